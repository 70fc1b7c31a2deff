// The PyTorch wheel contains Gloo's code (in libtorch_cpu) but not its headers. This file is
// compiled against Debian's libgloo-dev headers for the declarations that ProcessGroupGloo.hpp
// needs, and calls only out-of-line functions of libtorch (the ProcessGroupGloo and Options
// constructors, createDeviceForHostname / createDefaultDevice); Debian's libgloo is never linked,
// so the process holds exactly one Gloo. Keep this file the only includer of Gloo headers.
#include "models/parallel/comm/gloo_backend_factory.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

namespace raylight::comm {

c10::intrusive_ptr<c10d::Backend> CreateGlooBackend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int size,
                                                    std::chrono::milliseconds timeout,
                                                    const std::string& hostname) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(hostname.empty()
                                 ? c10d::ProcessGroupGloo::createDefaultDevice()
                                 : c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

}  // namespace raylight::comm
