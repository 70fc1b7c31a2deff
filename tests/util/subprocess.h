// Tests start processes with the runtime's ChildProcess (runtime/common/child_process.h).
#pragma once

#include "runtime/common/child_process.h"

namespace raylight::testing_util {
using ::raylight::ChildProcess;
}  // namespace raylight::testing_util
