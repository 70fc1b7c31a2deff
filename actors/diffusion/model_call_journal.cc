#include "actors/diffusion/model_call_journal.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "runtime/common/log.h"

namespace raylight::actors {
namespace {

constexpr char kFileMagic[4] = {'R', 'L', 'J', '1'};
constexpr uint32_t kRecordMagic = 0x43524c52;  // "RLRC"
constexpr int kMaxDims = 8;
constexpr int64_t kHeaderBytes = 4 + 8;

uint32_t Crc(const void* data, size_t bytes, uint32_t crc = 0) {
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {  // zlib takes uInt lengths
    const uInt n = static_cast<uInt>(std::min<size_t>(bytes, 1u << 30));
    crc = static_cast<uint32_t>(crc32(crc, p, n));
    p += n;
    bytes -= n;
  }
  return crc;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool ReadAt(int fd, void* out, size_t bytes, int64_t offset) {
  auto* p = static_cast<char*>(out);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, p, bytes, offset);
    if (n <= 0) return false;
    p += n;
    bytes -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

bool WriteAt(int fd, const std::string& data, int64_t offset) {
  const char* p = data.data();
  size_t bytes = data.size();
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, p, bytes, offset);
    if (n <= 0) return false;
    p += n;
    bytes -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

template <typename T>
void Put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Journals in `dir` not written for `max_age` and not held by a run.
void RemoveStale(const std::string& dir, absl::Duration max_age) {
  std::error_code error;
  const auto cutoff = std::filesystem::file_time_type::clock::now() -
                      std::chrono::duration_cast<std::filesystem::file_time_type::duration>(
                          absl::ToChronoSeconds(max_age));
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() != ".journal") continue;
    if (entry.last_write_time(error) > cutoff || error) continue;
    const int fd = ::open(entry.path().c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) std::filesystem::remove(entry.path(), error);
    ::close(fd);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelCallJournal>> ModelCallJournal::Open(const std::string& dir,
                                                                         const std::string& job_id,
                                                                         uint64_t fingerprint,
                                                                         int64_t max_bytes,
                                                                         absl::Duration max_age) {
  if (job_id.empty() || job_id.find('/') != std::string::npos || job_id[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat("job_id: '", job_id, "' cannot name a file"));
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, error);
  RemoveStale(dir, max_age);
  const std::string path = absl::StrCat(dir, "/", job_id, ".journal");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(absl::StrCat("open ", path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat(path, " is held by another run of the job"));
  }
  std::unique_ptr<ModelCallJournal> journal(new ModelCallJournal(path, fd));
  journal->max_bytes_ = max_bytes;
  if (absl::Status loaded = journal->Load(fingerprint); !loaded.ok()) return loaded;
  return journal;
}

ModelCallJournal::~ModelCallJournal() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

absl::Status ModelCallJournal::Load(uint64_t fingerprint) {
  struct stat info;
  if (::fstat(fd_, &info) != 0) return Errno(absl::StrCat("stat ", path_));
  const int64_t file_bytes = info.st_size;
  char magic[4];
  uint64_t found = 0;
  const bool ours = file_bytes >= kHeaderBytes && ReadAt(fd_, magic, 4, 0) &&
                    std::memcmp(magic, kFileMagic, 4) == 0 && ReadAt(fd_, &found, 8, 4) &&
                    found == fingerprint;
  if (!ours) {  // new, or another job's inputs: start over
    std::string header(kFileMagic, 4);
    Put(header, fingerprint);
    if (::ftruncate(fd_, 0) != 0 || !WriteAt(fd_, header, 0)) {
      return Errno(absl::StrCat("write ", path_));
    }
    size_ = kHeaderBytes;
    return absl::OkStatus();
  }
  int64_t offset = kHeaderBytes;
  while (true) {
    uint32_t record_magic = 0;
    uint64_t digest = 0;
    int8_t dtype = 0;
    uint8_t dims = 0;
    const int64_t fixed = 4 + 8 + 1 + 1;
    if (offset + fixed > file_bytes || !ReadAt(fd_, &record_magic, 4, offset) ||
        record_magic != kRecordMagic || !ReadAt(fd_, &digest, 8, offset + 4) ||
        !ReadAt(fd_, &dtype, 1, offset + 12) || !ReadAt(fd_, &dims, 1, offset + 13) ||
        dims > kMaxDims) {
      break;
    }
    Record record;
    record.input_digest = digest;
    record.dtype = dtype;
    record.sizes.resize(dims);
    int64_t at = offset + fixed;
    if (at + 8 * dims + 8 + 4 > file_bytes ||
        (dims > 0 && !ReadAt(fd_, record.sizes.data(), 8 * dims, at))) {
      break;
    }
    at += 8 * dims;
    if (!ReadAt(fd_, &record.bytes, 8, at) || record.bytes < 0) break;
    at += 8 + 4;  // the bytes' length, then their CRC (checked when replayed)
    record.offset = at;
    if (at + record.bytes > file_bytes) break;  // cut by a crash
    offset = at + record.bytes;
    records_.push_back(std::move(record));
  }
  size_ = offset;
  if (size_ < file_bytes && ::ftruncate(fd_, size_) != 0) {
    return Errno(absl::StrCat("truncate ", path_));
  }
  return absl::OkStatus();
}

uint64_t ModelCallJournal::InputDigest(const at::Tensor& x, double timestep, int branch) {
  const at::Tensor bytes = x.detach().cpu().contiguous();
  const uint32_t data = Crc(bytes.data_ptr(), bytes.nbytes());
  std::string shape;
  for (int64_t size : bytes.sizes()) Put(shape, size);
  Put(shape, static_cast<int8_t>(bytes.scalar_type()));
  Put(shape, timestep);
  Put(shape, branch);
  return (uint64_t{data} << 32) | Crc(shape.data(), shape.size());
}

std::optional<at::Tensor> ModelCallJournal::Replay(int64_t index, const at::Tensor& x,
                                                   double timestep, int branch) {
  if (!replaying_ || index < 0 || index >= recorded()) {
    replaying_ = false;
    return std::nullopt;
  }
  const Record& record = records_[index];
  if (record.input_digest != InputDigest(x, timestep, branch)) {
    RL_LOG(WARNING) << path_ << ": call " << index << " has another input than the one recorded;"
                    << " computing from here";
    replaying_ = false;
    return std::nullopt;
  }
  at::Tensor out =
      at::empty(record.sizes, at::TensorOptions().dtype(static_cast<at::ScalarType>(record.dtype)));
  uint32_t crc = 0;
  if (static_cast<int64_t>(out.nbytes()) != record.bytes ||
      !ReadAt(fd_, &crc, 4, record.offset - 4) ||
      !ReadAt(fd_, out.data_ptr(), record.bytes, record.offset) ||
      Crc(out.data_ptr(), record.bytes) != crc) {
    RL_LOG(WARNING) << path_ << ": call " << index << "'s record is damaged; computing from here";
    replaying_ = false;
    return std::nullopt;
  }
  return out;
}

absl::Status ModelCallJournal::Append(int64_t index, const at::Tensor& x, double timestep,
                                      int branch, const at::Tensor& output) {
  if (!recording_ || index < recorded()) return absl::OkStatus();  // recorded before
  if (index != recorded()) {
    recording_ = false;
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": call ", index, " after ", recorded(), " recorded"));
  }
  const at::Tensor out = output.detach().cpu().contiguous();
  if (out.dim() > kMaxDims) {
    recording_ = false;
    return absl::InvalidArgumentError(absl::StrCat("output of ", out.dim(), " dimensions"));
  }
  const uint64_t digest = InputDigest(x, timestep, branch);
  std::string record;
  Put(record, kRecordMagic);
  Put(record, digest);
  Put(record, static_cast<int8_t>(out.scalar_type()));
  Put(record, static_cast<uint8_t>(out.dim()));
  for (int64_t size : out.sizes()) Put(record, size);
  Put(record, static_cast<int64_t>(out.nbytes()));
  Put(record, Crc(out.data_ptr(), out.nbytes()));
  const int64_t payload_offset = size_ + static_cast<int64_t>(record.size());
  record.append(static_cast<const char*>(out.data_ptr()), out.nbytes());
  if (size_ + static_cast<int64_t>(record.size()) > max_bytes_) {
    recording_ = false;
    return absl::ResourceExhaustedError(
        absl::StrCat(path_, ": the journal would pass its ", max_bytes_, " bytes"));
  }
  if (!WriteAt(fd_, record, size_)) {
    recording_ = false;
    const absl::Status failed = Errno(absl::StrCat("write ", path_));
    (void)::ftruncate(fd_, size_);
    return failed;
  }
  Record entry;
  entry.input_digest = digest;
  entry.offset = payload_offset;
  entry.bytes = static_cast<int64_t>(out.nbytes());
  entry.dtype = static_cast<int8_t>(out.scalar_type());
  entry.sizes.assign(out.sizes().begin(), out.sizes().end());
  size_ += static_cast<int64_t>(record.size());
  records_.push_back(std::move(entry));
  return absl::OkStatus();
}

void ModelCallJournal::Remove() {
  std::error_code error;
  std::filesystem::remove(path_, error);
  recording_ = false;
  replaying_ = false;
}

}  // namespace raylight::actors
