// CHECK for broken invariants (bugs), never for what a user, a file or the network can cause:
// those are absl::Status. Debian's Abseil (20220623) predates absl/log, hence this header.
#pragma once

#include <cstdio>
#include <cstdlib>

#define RL_CHECK(cond)                                                              \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)
