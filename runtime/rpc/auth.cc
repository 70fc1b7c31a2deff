#include "runtime/rpc/auth.h"

#include <grpcpp/client_context.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "runtime/common/log.h"

namespace raylight::rpc {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Walks the longer input whatever the contents; a length mismatch is folded into the result.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<ClusterToken> ClusterToken::Load(const std::string& token_file,
                                                const std::string& env_value) {
  if (!token_file.empty()) {
    // A token others can read is no secret: refuse it, as ssh refuses an open private key.
    struct stat info {};
    if (stat(token_file.c_str(), &info) == 0 && (info.st_mode & 0077) != 0) {
      return absl::PermissionDeniedError(
          absl::StrFormat("token_file: %s is readable by other users (mode %04o); chmod 600 %s",
                          token_file, info.st_mode & 07777, token_file));
    }
    std::ifstream in(token_file);
    if (!in) return absl::NotFoundError(absl::StrCat("token_file: cannot read ", token_file));
    std::ostringstream text;
    text << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(text.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("token_file: ", token_file, " is empty"));
    }
    return ClusterToken(std::move(token));
  }
  return ClusterToken(std::string(absl::StripAsciiWhitespace(env_value)));
}

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  return parts.size() == 4 && parts[0] == "127";
}

absl::Status CheckExposure(absl::string_view what, absl::string_view host,
                           const ClusterToken& token, bool tls, bool insecure) {
  if (IsLoopbackHost(host) || (token.enabled() && tls) || insecure) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, ": refusing to listen on ", host, " without ",
      token.enabled() ? "TLS" : (tls ? "a cluster token" : "a cluster token and TLS"),
      ": anyone who reaches it could run jobs, call actors and read the KV store, and read or "
      "replay what travels in clear. Give --token-file (or RAYLIGHT_TOKEN) and --tls-dir "
      "(`raylightctl up --tls` makes one), listen on loopback, or pass --insecure on a network "
      "you trust."));
}

bool ClusterToken::PresentedBy(const grpc::ServerContextBase& context) const {
  if (!enabled()) return false;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthMetadataKey);
  if (it == metadata.end()) return false;
  std::string presented(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  return presented.compare(0, kBearer.size(), kBearer.data(), kBearer.size()) == 0 &&
         ConstantTimeEquals(presented.substr(kBearer.size()), token_);
}

bool ServerAuth::MemberOnly(absl::string_view method) {
  static const auto* const kMemberMethods = new absl::flat_hash_set<absl::string_view>{
      "Head.RegisterNode",     "Head.NodeHeartbeat", "Head.RegisterWorker", "Head.WorkerHeartbeat",
      "Head.ReportWorkerExit", "Worker.StartActor",  "Worker.StopActor",    "Worker.JoinGroup",
      "Worker.LeaveGroup",     "Worker.Shutdown",    "Worker.CancelCall"};
  return absl::StartsWith(method, "KvStore.") || kMemberMethods->contains(method);
}

namespace {

// A rejection as a log line, at most one a second per process with the count of those left out:
// a client retrying with a wrong token wrote 0.5 MB of log a second (issue #23, item 10).
void LogRejection(const char* method, const std::string& peer, absl::string_view why) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::Time last = absl::InfinitePast();
  static int64_t left_out = 0;
  int64_t skipped = 0;
  {
    absl::MutexLock lock(&mu);
    const absl::Time now = absl::Now();
    if (now - last < absl::Seconds(1)) {
      ++left_out;
      return;
    }
    last = now;
    skipped = std::exchange(left_out, 0);
  }
  RL_LOG(WARNING) << "rejected " << method << " from " << peer << ": " << why
                  << (skipped > 0 ? absl::StrCat(" (and ", skipped,
                                                 " more rejections since the "
                                                 "last line)")
                                  : "");
}

}  // namespace

grpc::Status ServerAuth::Check(const grpc::ServerContextBase& context, const char* method) const {
  const bool member_only = MemberOnly(method);
  const bool certified = !tls_ || context.auth_context()->IsPeerAuthenticated();
  if (!enabled()) {
    if (!member_only || certified) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat(method, " is for cluster members: it needs the member ",
                                     "certificate (mutual TLS)"));
  }
  // Without a member token of its own, the cluster token is the members' too.
  const ClusterToken& member = member_.enabled() ? member_ : client_;
  const bool is_member = member.PresentedBy(context);
  if (is_member || (!member_only && client_.PresentedBy(context))) {
    if (!member_only || certified) {
      return grpc::Status::OK;
    }
    LogRejection(method, context.peer(), "a member RPC without a member certificate");
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat(method, " is for cluster members: it needs the member ",
                                     "certificate (mutual TLS) as well as the member token"));
  }
  if (member_only && client_.PresentedBy(context)) {
    LogRejection(method, context.peer(), "a client token on a member RPC");
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat(method, " is for cluster members (nodes, workers, the head): ",
                                     "a client's token does not grant it"));
  }
  const bool missing = context.client_metadata().count(kAuthMetadataKey) == 0;
  LogRejection(method, context.peer(), missing ? "missing cluster token" : "wrong cluster token");
  return grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED,
      absl::StrCat(missing ? "missing" : "wrong", " cluster token (metadata '", kAuthMetadataKey,
                   ": Bearer <token>'; see --token-file / RAYLIGHT_TOKEN)"));
}

void ClusterToken::Attach(grpc::ClientContext& context) const {
  if (enabled()) context.AddMetadata(kAuthMetadataKey, absl::StrCat("Bearer ", token_));
}

}  // namespace raylight::rpc
