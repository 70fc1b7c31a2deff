// Early-return helpers for absl::Status / absl::StatusOr, in the LevelDB/Ray style.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RL_STATUS_CONCAT_INNER(a, b) a##b
#define RL_STATUS_CONCAT(a, b) RL_STATUS_CONCAT_INNER(a, b)

// Returns `expr` from the enclosing function when it is not OK.
#define RL_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status rl_status_ = (expr);      \
    if (!rl_status_.ok()) return rl_status_; \
  } while (false)

// `RL_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an OK StatusOr, or returns its status.
#define RL_ASSIGN_OR_RETURN(lhs, expr) \
  RL_ASSIGN_OR_RETURN_IMPL(RL_STATUS_CONCAT(rl_statusor_, __LINE__), lhs, expr)
#define RL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
