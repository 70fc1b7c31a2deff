// A terminal progress bar in tqdm's format, for `raylightctl sample`:
//
//    45%|██████▊        | 9/20 [00:12<00:15,  1.32s/it] step 9: sigma 0.412
//
// Hand-written because Debian 12 packages no C++ progress-bar library with rates and ETAs (Boost's
// progress_display has neither); about sixty lines, redrawn in place with a carriage return when
// the output is a terminal, one line per update otherwise (logs stay readable).
#pragma once

#include <cstdio>
#include <string>

namespace raylight::cli {

class ProgressBar {
 public:
  explicit ProgressBar(FILE* out = stderr);
  // `done` of `total` steps after `elapsed_seconds`; `note` follows the bar.
  void Update(int done, int total, double elapsed_seconds, const std::string& note = "");
  // A line above the bar (log messages); the bar is redrawn below it.
  void Message(const std::string& line);
  // Ends the bar's line.
  void Finish();

 private:
  void Draw();

  FILE* const out_;
  const bool terminal_;
  int done_ = 0, total_ = 0;
  double elapsed_ = 0;
  std::string note_;
  bool drawn_ = false;
};

// "01:05", "1:02:03".
std::string FormatClock(double seconds);

}  // namespace raylight::cli
