#include "client/cli/progress_bar.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/str_format.h"

namespace raylight::cli {

std::string FormatClock(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long total = std::lround(seconds);
  if (total >= 3600)
    return absl::StrFormat("%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60);
  return absl::StrFormat("%02d:%02d", total / 60, total % 60);
}

ProgressBar::ProgressBar(FILE* out) : out_(out), terminal_(isatty(fileno(out)) != 0) {}

void ProgressBar::Update(int done, int total, double elapsed_seconds, const std::string& note) {
  done_ = done;
  total_ = total;
  elapsed_ = elapsed_seconds;
  note_ = note;
  Draw();
}

void ProgressBar::Message(const std::string& line) {
  if (terminal_ && drawn_) std::fputs("\r\033[K", out_);
  std::fprintf(out_, "%s\n", line.c_str());
  if (terminal_ && drawn_) Draw();
  std::fflush(out_);
}

void ProgressBar::Finish() {
  if (terminal_ && drawn_) std::fputc('\n', out_);
  drawn_ = false;
  std::fflush(out_);
}

void ProgressBar::Draw() {
  constexpr int kWidth = 24;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / total_ : 0;
  // Eighth blocks give the bar sub-character resolution, as tqdm's does.
  static const char* const kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  const int eighths = static_cast<int>(fraction * kWidth * 8);
  std::string bar;
  for (int i = 0; i < eighths / 8; ++i) bar += "█";
  int cells = eighths / 8;
  if (cells < kWidth && eighths % 8 != 0) {
    bar += kEighths[eighths % 8];
    ++cells;
  }
  bar += std::string(kWidth - cells, ' ');
  // Seconds per step once steps are slow (diffusion), steps per second when they are fast.
  std::string rate = "?it/s";
  if (done_ > 0 && elapsed_ > 0) {
    const double per_step = elapsed_ / done_;
    rate = per_step >= 1 ? absl::StrFormat("%5.2fs/it", per_step)
                         : absl::StrFormat("%5.2fit/s", 1 / per_step);
  }
  const double eta = done_ > 0 ? elapsed_ / done_ * (total_ - done_) : NAN;
  const std::string line = absl::StrFormat(
      "%3d%%|%s| %d/%d [%s<%s, %s]%s%s", static_cast<int>(fraction * 100), bar, done_, total_,
      FormatClock(elapsed_), FormatClock(eta), rate, note_.empty() ? "" : " ", note_);
  if (terminal_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  drawn_ = true;
  std::fflush(out_);
}

}  // namespace raylight::cli
