#include "runtime/worker/actor_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/common/check.h"

namespace raylight::worker {

void ActorRegistry::Register(std::string class_name, ActorFactory factory) {
  RL_CHECK(!factories_.contains(class_name));
  factories_.emplace(std::move(class_name), std::move(factory));
}

absl::StatusOr<std::unique_ptr<Actor>> ActorRegistry::Create(absl::string_view class_name,
                                                             const ActorEnvironment& environment,
                                                             absl::string_view init_args) const {
  auto it = factories_.find(class_name);
  if (it == factories_.end()) {
    return absl::NotFoundError(
        absl::StrCat("class_name: unknown actor class '", class_name,
                     "' (this worker hosts: ", absl::StrJoin(ClassNames(), ", "), ")"));
  }
  return it->second(environment, init_args);
}

std::vector<std::string> ActorRegistry::ClassNames() const {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories_) names.push_back(name);
  return names;
}

}  // namespace raylight::worker
