#!/usr/bin/env python3
"""The cards' sustained SM clocks while a benchmark ran: nvidia-smi samples (timestamp, index,
clocks.sm, power.draw, temperature.gpu, utilization.gpu; csv, noheader) grouped by which cards
were busy at each sample, one JSON line per (phase, card). A step paced by its slowest card can
be no faster than that card's clock allows, so this is what a two-GPU speedup against one GPU is
bounded by when the cards throttle differently under their power limit.

    python3 tests/bench/clock_phases.py clocks.csv
"""
import collections
import csv
import json
import statistics
import sys

BUSY, IDLE = 90, 5  # utilization (%) of a card running a step, of one that is not


def number(field):
    return float(field.strip().split()[0])


def main(path):
    samples = collections.defaultdict(dict)  # timestamp (to 0.1 s) -> card -> (clock, W, C, util)
    with open(path) as f:
        for row in csv.reader(f):
            if len(row) != 6:
                continue
            try:
                stamp, card = row[0].strip()[:21], int(row[1])
                samples[stamp][card] = tuple(number(x) for x in row[2:])
            except ValueError:
                continue
    phases = collections.defaultdict(lambda: collections.defaultdict(list))
    for cards in samples.values():
        busy = sorted(c for c, s in cards.items() if s[3] >= BUSY)
        if not busy or any(IDLE < s[3] < BUSY for s in cards.values()):
            continue  # starting, stopping, or between steps
        phase = "busy_" + "_".join(map(str, busy))
        for card in busy:
            phases[phase][card].append(cards[card])
    for phase, cards in sorted(phases.items()):
        for card, rows in sorted(cards.items()):
            clocks = [r[0] for r in rows]
            print(json.dumps({
                "phase": phase, "card": card, "samples": len(rows),
                "sm_mhz_median": statistics.median(clocks),
                "sm_mhz_mean": round(statistics.mean(clocks), 1),
                "power_w_mean": round(statistics.mean(r[1] for r in rows), 1),
                "temperature_c_max": max(r[2] for r in rows)}))


if __name__ == "__main__":
    main(sys.argv[1])
