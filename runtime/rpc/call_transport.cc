#include "runtime/rpc/call_transport.h"

#include <grpcpp/grpcpp.h>

#include "absl/cleanup/cleanup.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::rpc {
namespace {

// Deadline, token, then the caller's hook (which may cancel the call from another thread).
void Prepare(grpc::ClientContext& context, const ClusterToken& token, absl::Duration timeout,
             const ContextHook& on_context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  token.Attach(context);
  if (on_context) on_context(&context);
}

// Small arguments and nobody listening for events: one unary call.
absl::StatusOr<std::string> Unary(v1::Worker::Stub& stub, const ClusterToken& token,
                                  const v1::CallHeader& header, const std::string& args,
                                  absl::Duration timeout, const ContextHook& on_context) {
  grpc::ClientContext context;
  // Told before the context is destroyed: another thread may be about to TryCancel it.
  absl::Cleanup forget = [&on_context] {
    if (on_context) on_context(nullptr);
  };
  Prepare(context, token, timeout, on_context);
  v1::CallRequest request;
  *request.mutable_header() = header;
  request.set_args(args);
  v1::CallResponse response;
  grpc::Status status = stub.Call(&context, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return std::move(*response.mutable_result());
}

absl::StatusOr<std::string> Streamed(v1::Worker::Stub& stub, const ClusterToken& token,
                                     const v1::CallHeader& header, const std::string& args,
                                     absl::Duration timeout, const EventCallback& on_event,
                                     const ContextHook& on_context) {
  grpc::ClientContext context;
  // Told before the context is destroyed: another thread may be about to TryCancel it.
  absl::Cleanup forget = [&on_context] {
    if (on_context) on_context(nullptr);
  };
  Prepare(context, token, timeout, on_context);
  auto stream = stub.CallStream(&context);
  size_t offset = 0;
  bool first = true;
  do {
    v1::CallChunk chunk;
    if (first) *chunk.mutable_header() = header;
    first = false;
    const size_t n = std::min(kChunkBytes, args.size() - offset);
    chunk.set_data(args.substr(offset, n));
    offset += n;
    chunk.set_last(offset == args.size());
    if (!stream->Write(chunk)) break;  // the server ended the call; Finish says why
  } while (offset < args.size());
  stream->WritesDone();
  std::string result;
  v1::CallOutput output;
  while (stream->Read(&output)) {
    if (output.has_event()) {
      if (on_event) on_event(output.event());
    } else {
      result.append(output.result_data());
    }
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) return FromGrpc(status);
  return result;
}

}  // namespace

absl::StatusOr<std::string> CallActorOnce(v1::Worker::Stub& stub, const ClusterToken& token,
                                          const v1::CallHeader& header, const std::string& args,
                                          absl::Duration timeout, const EventCallback& on_event,
                                          const ContextHook& on_context) {
  if (args.size() <= kChunkBytes && !on_event) {
    return Unary(stub, token, header, args, timeout, on_context);
  }
  return Streamed(stub, token, header, args, timeout, on_event, on_context);
}

}  // namespace raylight::rpc
