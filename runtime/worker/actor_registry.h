// ActorRegistry: actor classes by name. The worker binary fills it at startup (explicitly, in
// its main: static registration objects are dropped by the linker from static libraries).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/worker/actor.h"

namespace raylight::worker {

class ActorRegistry {
 public:
  ActorRegistry() = default;
  ActorRegistry(const ActorRegistry&) = delete;
  ActorRegistry& operator=(const ActorRegistry&) = delete;

  // A second registration of a name is a bug.
  void Register(std::string class_name, ActorFactory factory);

  // NotFound naming the class and the known ones.
  absl::StatusOr<std::unique_ptr<Actor>> Create(absl::string_view class_name,
                                                const ActorEnvironment& environment,
                                                absl::string_view init_args) const;
  std::vector<std::string> ClassNames() const;

 private:
  std::map<std::string, ActorFactory, std::less<>> factories_;
};

}  // namespace raylight::worker
