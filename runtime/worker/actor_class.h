// Typed methods for actors whose arguments and results are protobuf messages:
//
//   class Counter : public MethodTable<Counter> {
//    public:
//     Counter() { Register("increment", &Counter::Increment); }
//     absl::StatusOr<CounterResponse> Increment(const IncrementRequest&, CallContext&);
//   };
//
// Call() parses the arguments into the method's request type (InvalidArgument naming the method
// when they do not parse) and serializes the response.
#pragma once

#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/worker/actor.h"

namespace raylight::worker {

template <typename Derived>
class MethodTable : public Actor {
 public:
  absl::StatusOr<std::string> Call(absl::string_view method, absl::string_view args,
                                   CallContext& context) final {
    auto it = methods_.find(method);
    if (it == methods_.end()) {
      std::vector<std::string> known;
      for (const auto& [name, handler] : methods_) known.push_back(name);
      std::sort(known.begin(), known.end());
      return absl::NotFoundError(absl::StrCat("method: '", method,
                                              "' is not a method of this actor (",
                                              absl::StrJoin(known, ", "), ")"));
    }
    return it->second(args, context);
  }

 protected:
  template <typename Request, typename Response>
  void Register(std::string name,
                absl::StatusOr<Response> (Derived::*method)(const Request&, CallContext&)) {
    auto* self = static_cast<Derived*>(this);
    methods_[name] = [self, method, name](absl::string_view args,
                                          CallContext& context) -> absl::StatusOr<std::string> {
      Request request;
      if (!request.ParseFromArray(args.data(), static_cast<int>(args.size()))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "args: not a serialized ", Request::descriptor()->full_name(), " (method ", name, ")"));
      }
      absl::StatusOr<Response> response = (self->*method)(request, context);
      if (!response.ok()) return response.status();
      return response->SerializeAsString();
    };
  }

 private:
  using Handler = absl::AnyInvocable<absl::StatusOr<std::string>(absl::string_view, CallContext&)>;
  absl::flat_hash_map<std::string, Handler> methods_;
};

}  // namespace raylight::worker
