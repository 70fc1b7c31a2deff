// Network namespaces joined by a bridge, for tests that must not assume loopback: each namespace
// is a separate "machine" with its own address on a private /24, reachable from the others and
// from the test process (the bridge's address in the root namespace). Needs root and iproute2;
// Create() says clearly why when it cannot run, and the test skips with that message.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::testing_util {

class NetnsLab {
 public:
  // `machines` namespaces, each with one veth into a bridge that lives in the root namespace.
  static absl::StatusOr<std::unique_ptr<NetnsLab>> Create(int machines);
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;
  ~NetnsLab();  // deletes the namespaces (and their processes' network with them) and the bridge

  // The address of machine `index` as its peers reach it.
  const std::string& address(int index) const { return addresses_[index]; }
  // Prefix for an argv that must run inside machine `index` (`ip netns exec <name>`).
  std::vector<std::string> ExecPrefix(int index) const;
  int size() const { return static_cast<int>(namespaces_.size()); }

 private:
  NetnsLab() = default;
  absl::Status Setup(int machines);

  std::string bridge_;
  std::vector<std::string> namespaces_;
  std::vector<std::string> addresses_;
};

}  // namespace raylight::testing_util
