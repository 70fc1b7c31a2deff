#include "models/parallel/comm/comm_errors.h"

#include <c10/util/Exception.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace raylight::comm {

absl::Status StatusFromException(absl::string_view op, const std::exception& e) {
  // c10::Error's what() carries a C++ backtrace; the message alone is what a user needs.
  absl::string_view message = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    message = c10_error->msg();
  }
  const std::string text = absl::StrCat(op, ": ", message);
  const std::string lower = absl::AsciiStrToLower(message);
  auto mentions = [&](absl::string_view word) { return absl::StrContains(lower, word); };
  if (mentions("timed out") || mentions("timeout") || mentions("deadline_exceeded")) {
    return absl::DeadlineExceededError(text);
  }
  if (dynamic_cast<const c10::DistNetworkError*>(&e) != nullptr || mentions("connection") ||
      mentions("closed by peer")) {
    return absl::UnavailableError(text);
  }
  return absl::InternalError(text);
}

}  // namespace raylight::comm
