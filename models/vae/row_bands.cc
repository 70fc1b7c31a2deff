#include "models/vae/row_bands.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/common/status_macros.h"

namespace raylight::models::vae {
namespace {

at::Tensor ZeroRows(const at::Tensor& x, int64_t dim, int64_t rows) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape[dim] = rows;
  return at::zeros(shape, x.options());
}

}  // namespace

absl::StatusOr<RowBands> RowBands::Split(comm::Communicator* comm, int64_t rows) {
  RowBands bands;
  bands.comm_ = comm;
  const int parts = comm == nullptr ? 1 : comm->size();
  if (rows < parts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a latent of ", rows, " rows cannot be split into ", parts, " bands of at least one row"));
  }
  bands.starts_.push_back(0);
  for (int r = 0; r < parts; ++r) {
    bands.starts_.push_back(bands.starts_.back() + rows / parts + (r < rows % parts ? 1 : 0));
  }
  return bands;
}

absl::StatusOr<std::vector<int64_t>> RowBands::BandRows(const at::Tensor& x, int64_t dim) const {
  const int64_t mine = end() - begin();
  if (mine <= 0 || x.size(dim) % mine != 0) {
    return absl::InternalError(
        absl::StrCat("a tensor of ", x.size(dim), " rows is not a multiple of this band's ", mine));
  }
  const int64_t scale = x.size(dim) / mine;
  std::vector<int64_t> rows;
  for (size_t r = 0; r + 1 < starts_.size(); ++r)
    rows.push_back((starts_[r + 1] - starts_[r]) * scale);
  return rows;
}

absl::StatusOr<at::Tensor> RowBands::PadRows(const at::Tensor& x, int64_t dim, int64_t above,
                                             int64_t below) const {
  if (!split()) {
    std::vector<at::Tensor> parts;
    if (above > 0) parts.push_back(ZeroRows(x, dim, above));
    parts.push_back(x);
    if (below > 0) parts.push_back(ZeroRows(x, dim, below));
    return parts.size() == 1 ? x : at::cat(parts, dim);
  }
  RL_ASSIGN_OR_RETURN(std::vector<int64_t> rows, BandRows(x, dim));
  const int r = rank();
  const int last = comm_->size() - 1;
  if ((r > 0 && rows[r - 1] < above) || (r < last && rows[r + 1] < below) || rows[r] < above ||
      rows[r] < below) {
    return absl::InternalError("a halo is wider than a band");
  }
  // Rank r's top rows are the band above's bottom halo, its bottom rows the band below's top.
  at::Tensor top = r > 0 ? ZeroRows(x, dim, above) : at::Tensor();
  at::Tensor bottom = r < last ? ZeroRows(x, dim, below) : at::Tensor();
  std::vector<comm::P2POp> ops;
  if (r > 0) {
    if (below > 0) {
      ops.push_back({comm::P2POp::Kind::kSend, x.narrow(dim, 0, below).contiguous(), r - 1});
    }
    if (above > 0) ops.push_back({comm::P2POp::Kind::kRecv, top, r - 1});
  }
  if (r < last) {
    if (above > 0) {
      ops.push_back({comm::P2POp::Kind::kSend,
                     x.narrow(dim, x.size(dim) - above, above).contiguous(), r + 1});
    }
    if (below > 0) ops.push_back({comm::P2POp::Kind::kRecv, bottom, r + 1});
  }
  RL_RETURN_IF_ERROR(comm_->SendRecv(ops));
  std::vector<at::Tensor> parts;
  if (above > 0) parts.push_back(r > 0 ? top : ZeroRows(x, dim, above));
  parts.push_back(x);
  if (below > 0) parts.push_back(r < last ? bottom : ZeroRows(x, dim, below));
  return at::cat(parts, dim);
}

absl::StatusOr<at::Tensor> RowBands::AllRows(const at::Tensor& x, int64_t dim) const {
  if (!split()) return x;
  RL_ASSIGN_OR_RETURN(std::vector<int64_t> rows, BandRows(x, dim));
  // All-gather wants equal shapes: every band padded to the tallest, the padding dropped after.
  const int64_t tallest = *std::max_element(rows.begin(), rows.end());
  at::Tensor padded = x;
  if (x.size(dim) < tallest) padded = at::cat({x, ZeroRows(x, dim, tallest - x.size(dim))}, dim);
  RL_ASSIGN_OR_RETURN(at::Tensor gathered, comm_->AllGather(padded.contiguous(), dim));
  std::vector<at::Tensor> parts;
  for (size_t r = 0; r < rows.size(); ++r) {
    parts.push_back(gathered.narrow(dim, static_cast<int64_t>(r) * tallest, rows[r]));
  }
  return at::cat(parts, dim);
}

absl::StatusOr<at::Tensor> RowBands::RowsOnRoot(const at::Tensor& x, int64_t dim) const {
  if (!split()) return x;
  RL_ASSIGN_OR_RETURN(std::vector<int64_t> rows, BandRows(x, dim));
  std::vector<comm::P2POp> ops;
  std::vector<at::Tensor> parts;
  if (rank() == 0) {
    parts.push_back(x);
    for (int r = 1; r < comm_->size(); ++r) {
      parts.push_back(ZeroRows(x, dim, rows[r]).contiguous());
      ops.push_back({comm::P2POp::Kind::kRecv, parts.back(), r});
    }
  } else {
    ops.push_back({comm::P2POp::Kind::kSend, x.contiguous(), 0});
  }
  RL_RETURN_IF_ERROR(comm_->SendRecv(ops));
  if (rank() != 0) return at::Tensor();
  return at::cat(parts, dim);
}

}  // namespace raylight::models::vae
