// Rows of an image split into contiguous bands over a group, one band per rank: what the VAE's
// exact parallel decode runs on. The Wan VAE's norms are per pixel and its upsampling is
// nearest-neighbour, so only convolutions (a halo of rows from each neighbour) and the middle
// attention (every row's keys and values) look beyond a band; this class supplies exactly
// those rows, and gathers finished frames on rank 0.
//
// Bands are set in latent rows; a tensor at a finer resolution (after k 2x upsamplings) holds
// each band's rows times the same factor, read from its size.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::models::vae {

class RowBands {
 public:
  // One process: one band of every row; halos are the zero rows of the image's edges.
  RowBands() = default;

  // `comm`'s ranks split `rows` latent rows into contiguous bands whose sizes differ by at most
  // one, rank order top to bottom. InvalidArgument when a rank would get no row.
  static absl::StatusOr<RowBands> Split(comm::Communicator* comm, int64_t rows);

  bool split() const { return comm_ != nullptr && comm_->size() > 1; }
  int rank() const { return comm_ == nullptr ? 0 : comm_->rank(); }
  // This rank's latent rows [begin, end); (0, 0) until Split (the caller takes every row).
  int64_t begin() const { return starts_.empty() ? 0 : starts_[rank()]; }
  int64_t end() const { return starts_.empty() ? 0 : starts_[rank() + 1]; }

  // `x` with `above` rows of the band above and `below` rows of the band below added along
  // `dim` (zero rows at the image's top and bottom edges). Collective.
  absl::StatusOr<at::Tensor> PadRows(const at::Tensor& x, int64_t dim, int64_t above,
                                     int64_t below) const;
  // Every band's rows of `x` along `dim`, top to bottom, on every rank. Collective.
  absl::StatusOr<at::Tensor> AllRows(const at::Tensor& x, int64_t dim) const;
  // The same on rank 0 only (other ranks get an undefined tensor). Collective.
  absl::StatusOr<at::Tensor> RowsOnRoot(const at::Tensor& x, int64_t dim) const;

 private:
  // Rows per band at `x`'s resolution (its size along dim over this band's latent rows).
  absl::StatusOr<std::vector<int64_t>> BandRows(const at::Tensor& x, int64_t dim) const;

  comm::Communicator* comm_ = nullptr;
  std::vector<int64_t> starts_;  // size() + 1 latent row boundaries
};

}  // namespace raylight::models::vae
