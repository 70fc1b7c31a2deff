#!/usr/bin/env python3
"""Turns raw benchmark JSON lines into a results file (tests/bench/results/) and the matching
table in BENCHMARKS.md (between `<!-- bench:NAME -->` markers).

    tests/bench/report.py comm --raw DIR --device "2x NVIDIA H200 (NV18)" --command "..."
    tests/bench/report.py wan --raw DIR --device "NVIDIA H200" --command "..."
    tests/bench/report.py parallel --raw DIR --device "2x NVIDIA H200 (NV18)" --command "..."
    tests/bench/report.py scaling --raw DIR --device "4x NVIDIA H200" --command "..."
    tests/bench/report.py jobs --raw DIR --device "..." --command "..."
    tests/bench/report.py overlap --raw DIR --device "2x NVIDIA H200 (NV18)" --command "..."

Each result row: {name, value, unit, anchor_name, anchor_value}. For each (op, size) the best of
the recorded rounds is kept, for raylight and for the anchor alike.
"""
import argparse
import datetime
import json
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def best(rows):
    out = {}
    for r in rows:
        key = (r['op'], r['size_mib'])
        if key not in out or r['busbw_GBps'] > out[key]['busbw_GBps']:
            out[key] = r
    return out


def comm_rows(raw_dir):
    ours = best(load(os.path.join(raw_dir, 'comm_raylight.jsonl')))
    torch = best(load(os.path.join(raw_dir, 'comm_torch.jsonl')))
    rows = []
    for (op, mib), r in sorted(ours.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        anchor = torch.get((op, mib))
        rows.append({
            'name': f'comm_{op}_busbw_{mib}MiB',
            'value': round(r['busbw_GBps'], 1),
            'unit': 'GB/s',
            'anchor_name': f'torch.distributed {"all_to_all_single" if op == "all_to_all" else "all_gather_into_tensor"} (NCCL)',
            'anchor_value': round(anchor['busbw_GBps'], 1) if anchor else None,
            'time_us': round(r['time_us'], 1),
            'anchor_time_us': round(anchor['time_us'], 1) if anchor else None,
        })
    return rows


def wan_rows(raw_dir):
    """wan_bench lines: each model's step time against diffusers', MFU, load throughput."""
    raw = load(os.path.join(raw_dir, 'wan_raylight.jsonl'))
    lines = {r['name']: r for r in raw}
    peak_before = {}  # each model's MFU is against the matmul peak measured just before it
    last_peak = None
    for r in raw:
        if r['name'] == 'bf16_matmul_8192_tflops':
            last_peak = r['value']
        peak_before[r['name']] = last_peak
    rows = []
    for name, r in lines.items():
        if name.endswith('_step_ms_1gpu'):
            anchor = lines.get(name + '_diffusers')
            rows.append({'name': name, 'value': round(r['value'], 1), 'unit': 'ms',
                         'anchor_name': "diffusers WanTransformer3DModel (eager, SDPA, bf16)",
                         'anchor_value': round(anchor['value'], 1) if anchor else None})
            ablation = lines.get(name + '_default_sdpa')
            if ablation:
                rows.append({'name': name + '_default_sdpa', 'value': round(ablation['value'], 1),
                             'unit': 'ms', 'anchor_name': 'ours, cuDNN attention (row above)',
                             'anchor_value': round(r['value'], 1)})
        elif name.endswith('_mfu'):
            peak = peak_before.get(name)
            rows.append({'name': name, 'value': round(r['value'], 3), 'unit': 'of peak',
                         'anchor_name': 'bf16 matmul 8192^3, same process (TFLOP/s)',
                         'anchor_value': round(peak, 1) if peak else None,
                         'no_ratio': True})
        elif name.endswith('_load_GBps') or name.endswith('_rel_l2_vs_diffusers'):
            rows.append({'name': name, 'value': round(r['value'], 4 if 'rel_l2' in name else 2),
                         'unit': r['unit'] or '-', 'anchor_name': '-', 'anchor_value': None})
    return rows


# Issue #5's anchors for two-GPU speedups of one denoising step.
PARALLEL_ANCHORS = {
    'ulysses2': ('Wan2.1 official, 14B 720p, 2x H100 (FSDP + Ulysses)', 1.94),
    'ring2': ('Wan2.1 official, 14B 720p, 2x H100 (FSDP + Ulysses)', 1.94),
    'cfg2': ('issue #5 goal for cfg 2', 1.95),
}


def parallel_rows(raw_dir):
    """run_parallel_bench.sh lines: each mode's step time and its speedup over one GPU."""
    lines = {r['name']: r for r in load(os.path.join(raw_dir, 'parallel_raylight.jsonl'))}
    rows = []
    for name, r in lines.items():
        if name.endswith('_1gpu_step_ms') or name.endswith('_1gpu_step_ms_second_gpu'):
            rows.append({'name': name, 'value': round(r['value'], 1), 'unit': 'ms',
                         'anchor_name': '-', 'anchor_value': None})
        elif name.endswith('2_step_ms'):
            prefix = name[:name.rindex('_', 0, len(name) - len('_step_ms'))]  # model and size
            one = lines[prefix + '_1gpu_step_ms']
            rows.append({'name': name, 'value': round(r['value'], 1), 'unit': 'ms',
                         'anchor_name': 'ours, 1 GPU, cond + uncond', 'anchor_value':
                         round(one['value'], 1)})
        elif name.endswith('_speedup'):
            mode = name.split('_')[-2]
            anchor_name, anchor = PARALLEL_ANCHORS[mode]
            rows.append({'name': name, 'value': r['value'], 'unit': 'x',
                         'anchor_name': anchor_name, 'anchor_value': anchor})
        elif name.endswith('_all_to_all_share'):
            rows.append({'name': name, 'value': r['value'], 'unit': 'of step',
                         'anchor_name': '-', 'anchor_value': None})
    return rows


# Issue #8's anchors: Wan2.1's official 14B 720p speedups (H100, FSDP + Ulysses, whole run).
SCALING_ANCHORS = {4: 3.70, 8: 6.38}


def ranks_of(label):
    """ulysses4 -> 4, cfg2_ulysses2 -> 4, fsdp4_ulysses4 -> 4 (FSDP shares the mesh's ranks)."""
    degrees = [int(d) for d in re.findall(r'(?:ulysses|ring|cfg)(\d+)', label)]
    product = 1
    for d in degrees:
        product *= d
    return product


def scaling_rows(raw_dir):
    """run_parallel_bench.sh lines on a 4- or 8-GPU machine: step times, speedups over 1 GPU,
    FSDP's cost against the same mesh with replicated weights, and its weight fraction."""
    raw = load(os.path.join(raw_dir, 'scaling_4gpu.jsonl'))
    lines = {}  # the latest line of each name so far: a run's rows follow its own 1-GPU row
    rows = []
    for r in raw:
        name, value = r['name'], r['value']
        lines[name] = r
        m = re.match(r'(wan\w+?_\d+x\d+x\d+)_(.+)_(step_ms|speedup|all_to_all_share|weight_fraction)$',
                     name)
        if name.endswith('_1gpu_step_ms'):
            rows.append({'name': name, 'value': round(value, 1), 'unit': 'ms',
                         'anchor_name': '-', 'anchor_value': None})
            continue
        if not m:
            continue
        prefix, label, what = m.groups()
        if what == 'step_ms':
            one = lines[prefix + '_1gpu_step_ms']['value']
            rows.append({'name': name, 'value': round(value, 1), 'unit': 'ms',
                         'anchor_name': 'ours, 1 GPU, cond + uncond', 'anchor_value': round(one, 1)})
            if label.startswith('fsdp'):
                replicated = lines.get(f"{prefix}_{label.split('_', 1)[1]}_step_ms")
                if replicated:
                    rows.append({'name': f'{prefix}_{label}_ratio',
                                 'value': round(value / replicated['value'], 3), 'unit': 'x',
                                 'anchor_name': f"issue #6 goal (ours, {label.split('_', 1)[1]}, "
                                                'replicated weights: ' f"{replicated['value']} ms)",
                                 'anchor_value': 1.03, 'lower_is_better': True})
        elif what == 'speedup':
            ranks = ranks_of(label)
            anchor = SCALING_ANCHORS.get(ranks)
            rows.append({'name': name, 'value': value, 'unit': 'x',
                         'anchor_name': f'Wan2.1 official, 14B 720p, {ranks}x H100 (FSDP + Ulysses)'
                         if anchor else ('Wan2.1 official, 14B 720p, 2x H100' if ranks == 2 else '-'),
                         'anchor_value': anchor if anchor else (1.94 if ranks == 2 else None)})
        elif what == 'all_to_all_share':
            rows.append({'name': name, 'value': value, 'unit': 'of step',
                         'anchor_name': '-', 'anchor_value': None})
        elif what == 'weight_fraction':
            ranks = ranks_of(label)
            rows.append({'name': name, 'value': value, 'unit': 'of resident',
                         'anchor_name': f'1/{ranks} (ideal)', 'anchor_value': round(1 / ranks, 4),
                         'lower_is_better': True})
    return rows


def jobs_rows(raw_dir):
    """job_bench lines: the job path on the CPU cluster (median of the recorded runs) and a 14B
    job end to end on two GPUs."""
    cpu = {}
    for r in load(os.path.join(raw_dir, 'jobs_cpu.jsonl')):
        cpu.setdefault(r['name'], []).append(r['value'])
    rows = []
    goals = {'job_dispatch_ms': ('issue #7 goal', 20.0)}
    for name, values in cpu.items():
        values = sorted(values)
        anchor_name, anchor = goals.get(name, ('-', None))
        rows.append({'name': name, 'value': round(values[len(values) // 2], 2),
                     'unit': 'per_s' if name.endswith('per_s') else 'ms',
                     'anchor_name': anchor_name, 'anchor_value': anchor})
    parallel = {r['name']: r for r in load(os.path.join(raw_dir, 'scaling_4gpu.jsonl'))}
    for r in load(os.path.join(raw_dir, 'jobs_gpu.jsonl')):
        name = r['name']
        row = {'name': name, 'value': round(r['value'], 3), 'unit': r['unit'],
               'anchor_name': '-', 'anchor_value': None}
        if name.endswith('_e2e_overhead_ratio'):
            row.update(anchor_name='issue #7 goal', anchor_value=1.02, lower_is_better=True)
        elif name.endswith('_later_step_ms') or name.endswith('_first_step_ms'):
            step = parallel.get(name.split('_job_')[0] + '_ulysses2_step_ms')
            if step:
                row.update(anchor_name='ours, parallel_rank_main ulysses 2 step (no cluster)',
                           anchor_value=step['value'])
        rows.append(row)
    return rows


def placement_rows(raw_dir):
    """run_parallel_bench.sh lines of `session.sh placement`: layer swap on one GPU against
    resident weights (and the naive offload), FSDP and FSDP with host shards on two GPUs against
    ulysses 2 with replicated weights."""
    raw = load(os.path.join(raw_dir, 'placement_2gpu.jsonl'))
    rows = []
    replicated = None  # the FSDP run's ulysses 2 step with replicated weights
    for r in raw:
        name, value = r['name'], r['value']
        label = re.match(r'wan\w+?_\d+x\d+x\d+_(.+)$', name).group(1)
        if label == '1gpu_step_ms':  # the swap run's counts; the FSDP run compares to ulysses 2
            if not any(row['name'] == name for row in rows):
                rows.append({'name': name, 'value': value, 'unit': 'ms', 'anchor_name': '-',
                             'anchor_value': None})
            continue
        if label == 'ulysses2_step_ms':
            replicated = value
        if label.endswith('_ratio') and 'swap' in label:
            naive = label.startswith('naive')
            rows.append({'name': name, 'value': value, 'unit': 'x of resident',
                         'anchor_name': '-' if naive else 'issue #6 goal',
                         'anchor_value': None if naive else 1.05, 'lower_is_better': True})
        elif label.endswith('_step_ms'):
            rows.append({'name': name, 'value': value, 'unit': 'ms', 'anchor_name': '-',
                         'anchor_value': None})
            if label.startswith('fsdp') and replicated:
                rows.append({'name': name.replace('_step_ms', '_ratio'),
                             'value': round(value / replicated, 3), 'unit': 'x of replicated',
                             'anchor_name': f'issue #6 goal (ulysses 2, replicated: {replicated} ms)',
                             'anchor_value': 1.03, 'lower_is_better': True})
        elif label.endswith('_weight_fraction_without_buffers'):
            rows.append({'name': name, 'value': value, 'unit': 'of resident',
                         'anchor_name': 'issue #6 goal' if label.startswith('fsdp2') else '-',
                         'anchor_value': 0.52 if label.startswith('fsdp2') else None,
                         'lower_is_better': True})
        elif label.endswith('_weight_fraction'):
            rows.append({'name': name, 'value': value, 'unit': 'of resident',
                         'anchor_name': '-', 'anchor_value': None})
        elif label.endswith('_load_peak_rss_GB'):
            rows.append({'name': name, 'value': value, 'unit': 'GB',  # 14B in bf16: 28.58 GB
                         'anchor_name': 'the whole model (bf16)', 'anchor_value': 28.58,
                         'lower_is_better': True})
    return rows


def two_gpu_speedup_row(name, value, label):
    """A 2-GPU speedup against issue #5's 1.95x goal (ulysses 2, cfg 2) or Wan's published one."""
    goal = label.startswith('ulysses2') or label.startswith('cfg2')
    return {'name': name, 'value': value, 'unit': 'x',
            'anchor_name': 'issue #5 goal' if goal else PARALLEL_ANCHORS['ring2'][0],
            'anchor_value': 1.95 if goal else PARALLEL_ANCHORS['ring2'][1]}


def overlap_rows(raw_dir, raw_file='overlap_2gpu.jsonl'):
    """run_parallel_bench.sh lines of `session.sh overlap`: ulysses 2 under each exchange schedule
    (the default: overlapped on the copy engines; plain: on the compute stream with NCCL's
    kernels), ring 2 and cfg 2, against the 1-GPU step of the same run."""
    rows = []
    for r in load(os.path.join(raw_dir, raw_file)):
        name, value = r['name'], r['value']
        label = re.match(r'wan\w+?_\d+x\d+x\d+_(.+)$', name).group(1)
        if label.endswith('_step_ms'):
            rows.append({'name': name, 'value': value, 'unit': 'ms', 'anchor_name': '-',
                         'anchor_value': None})
        elif label.endswith('_speedup'):
            rows.append(two_gpu_speedup_row(name, value, label))
        elif label.endswith('_all_to_all_share'):
            rows.append({'name': name, 'value': value, 'unit': 'of step', 'anchor_name': '-',
                         'anchor_value': None})
    return rows


def interleave_rows(raw_dir):
    """`session.sh overlap` of session 9 (cond and uncond batched and interleaved under Ulysses,
    packing as row copies on the side stream): every step time as measured, and each two-GPU
    step's speedup recomputed against the one-GPU step that runs cond and uncond as two forwards
    (`1gpu_unbatched`, the faster one-GPU configuration and the default since), not against the
    batched one-GPU step the script divided by in that run."""
    steps = {}
    for r in load(os.path.join(raw_dir, 'overlap_2gpu_interleaved.jsonl')):
        label = re.match(r'wan\w+?_\d+x\d+x\d+_(.+)$', r['name']).group(1)
        if label.endswith('_step_ms'):
            steps[label[:-len('_step_ms')]] = (r['name'], r['value'])
    base_name, base = steps['1gpu_unbatched']
    rows = [{'name': base_name, 'value': base, 'unit': 'ms', 'anchor_name': '-',
             'anchor_value': None}]
    name, batched = steps['1gpu']
    rows.append({'name': name.replace('_1gpu_', '_1gpu_batched_'), 'value': batched,
                 'unit': 'ms', 'anchor_name': 'one GPU, two forwards', 'anchor_value': base})
    for label, (name, value) in steps.items():
        if label.startswith('1gpu'):
            continue
        rows.append({'name': name, 'value': value, 'unit': 'ms', 'anchor_name': '-',
                     'anchor_value': None})
        rows.append(two_gpu_speedup_row(name.replace('_step_ms', '_speedup'),
                                        round(base / value, 3), label))
    return rows


def peer_rows(raw_dir):
    """`session.sh overlap` of session 10: ulysses 2 with puts into peer memory (the default) and
    with session 9's all-to-alls on the workspace, against the 1-GPU step of the same run."""
    return overlap_rows(raw_dir, 'overlap_2gpu_peer.jsonl')


def clock_rows(raw_dir):
    """`session.sh overlap` of session 11 with SECOND_GPU=1: the 1-GPU step on each card, ulysses
    2 against each, and the cards' mean SM clocks (clock_phases.py) alone and in the pair. The
    pair is paced by its slower card, so 2 x (that card's clock in the pair) / (the reference
    card's clock alone) bounds the speedup as far as the clocks go (kernels bound by memory
    rather than clock make it approximate)."""
    steps, clocks = {}, {}
    for r in load(os.path.join(raw_dir, 'overlap_2gpu_clocks.jsonl')):
        if 'phase' in r:
            clocks[(r['phase'], r['card'])] = r['sm_mhz_mean']
        elif r['name'].endswith('_step_ms') or r['name'].endswith('_step_ms_second_gpu'):
            steps[r['name']] = r['value']
    prefix = next(iter(steps)).split('_1gpu')[0]
    one, second = steps[f'{prefix}_1gpu_step_ms'], steps[f'{prefix}_1gpu_step_ms_second_gpu']
    pair = steps[f'{prefix}_ulysses2_step_ms']
    rows = [{'name': f'{prefix}_1gpu_step_ms', 'value': one, 'unit': 'ms', 'anchor_name': '-',
             'anchor_value': None},
            {'name': f'{prefix}_1gpu_step_ms_second_gpu', 'value': second, 'unit': 'ms',
             'anchor_name': '-', 'anchor_value': None},
            {'name': f'{prefix}_ulysses2_step_ms', 'value': pair, 'unit': 'ms',
             'anchor_name': '-', 'anchor_value': None},
            two_gpu_speedup_row(f'{prefix}_ulysses2_speedup', round(one / pair, 3), 'ulysses2'),
            two_gpu_speedup_row(f'{prefix}_ulysses2_speedup_vs_second_gpu',
                                round(second / pair, 3), 'ulysses2')]
    for card in (0, 1):
        for phase, label in ((f'busy_{card}', 'alone'), ('busy_0_1', 'in_pair')):
            rows.append({'name': f'gpu{card}_sm_clock_{label}_mhz',
                         'value': clocks[(phase, card)], 'unit': 'MHz', 'anchor_name': '-',
                         'anchor_value': None})
    paced = min(clocks[('busy_0_1', 0)], clocks[('busy_0_1', 1)])
    for card, speedup in ((0, one / pair), (1, second / pair)):
        ceiling = 2 * paced / clocks[(f'busy_{card}', card)]
        suffix = '' if card == 0 else '_vs_second_gpu'
        rows.append({'name': f'{prefix}_ulysses2_clock_ceiling{suffix}',
                     'value': round(ceiling, 3), 'unit': 'x', 'anchor_name': 'issue #5 goal',
                     'anchor_value': 1.95})
        rows.append({'name': f'{prefix}_ulysses2_speedup_of_clock_ceiling{suffix}',
                     'value': round(speedup / ceiling, 3), 'unit': 'of ceiling',
                     'anchor_name': '-', 'anchor_value': None})
    return rows


def markdown(rows, device, command, date):
    lines = [f'Device: {device}. Date: {date}. Command: `{command}`', '',
             '| name | value | unit | anchor | anchor value | ratio (>1: ours better) |',
             '|---|---:|---|---|---:|---:|']
    for r in rows:
        ratio = '-'
        if r['anchor_value'] and not r.get('no_ratio'):
            # Times and costs: anchor / ours (above 1 = faster); rates: ours / anchor.
            lower = r['unit'] == 'ms' or r.get('lower_is_better')
            value = r['anchor_value'] / r['value'] if lower else r['value'] / r['anchor_value']
            ratio = f'{value:.2f}'
        anchor = r['anchor_value'] if r['anchor_value'] is not None else '-'
        lines.append(f"| `{r['name']}` | {r['value']} | {r['unit']} | {r['anchor_name']} | "
                     f"{anchor} | {ratio} |")
    return '\n'.join(lines)


def update_benchmarks(section, text):
    path = os.path.join(ROOT, 'BENCHMARKS.md')
    with open(path) as f:
        doc = f.read()
    begin, end = f'<!-- bench:{section} -->', f'<!-- /bench:{section} -->'
    block = f'{begin}\n{text}\n{end}'
    if begin in doc:
        doc = re.sub(re.escape(begin) + r'.*?' + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + '\n\n' + block + '\n'
    with open(path, 'w') as f:
        f.write(doc)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('section', choices=['comm', 'wan', 'parallel', 'scaling', 'jobs', 'placement',
                                            'overlap', 'interleave', 'peer', 'clocks'])
    parser.add_argument('--raw', required=True)
    parser.add_argument('--device', required=True)
    parser.add_argument('--command', required=True)
    parser.add_argument('--date', default=datetime.date.today().isoformat())
    args = parser.parse_args()
    rows = {'comm': comm_rows, 'wan': wan_rows, 'parallel': parallel_rows,
            'scaling': scaling_rows, 'jobs': jobs_rows,
            'placement': placement_rows, 'overlap': overlap_rows,
            'interleave': interleave_rows, 'peer': peer_rows,
            'clocks': clock_rows}[args.section](args.raw)
    result = {'device': args.device, 'command': args.command, 'date': args.date, 'results': rows}
    out = os.path.join(ROOT, 'tests', 'bench', 'results', f'{args.date}-{args.section}.json')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
        f.write('\n')
    update_benchmarks(args.section, markdown(rows, args.device, args.command, args.date))
    print(f'wrote {os.path.relpath(out, ROOT)} and BENCHMARKS.md')


if __name__ == '__main__':
    main()
