#include "models/core/copy_rows.h"

#include <array>
#include <utility>

namespace raylight::models {
namespace {

// Whether `t` can be viewed as words of `bytes` (Tensor::view(dtype)'s conditions): a dense
// innermost dimension of whole words, and every other stride and the offset whole words too.
bool FitsWords(const at::Tensor& t, int64_t bytes) {
  const int64_t element = t.element_size();
  if (t.dim() == 0 || t.stride(-1) != 1 || t.size(-1) * element % bytes != 0) return false;
  if (t.storage_offset() * element % bytes != 0) return false;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) {
    if (t.stride(d) * element % bytes != 0) return false;
  }
  return true;
}

}  // namespace

void CopyRows(const at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(dst.sizes() == src.sizes() && dst.scalar_type() == src.scalar_type(),
              "CopyRows: ", dst.sizes(), " ", dst.scalar_type(), " from ", src.sizes(), " ",
              src.scalar_type());
  if (dst.numel() == 0) return;
  // Word types whose copy_ moves bits unchanged (no arithmetic, so no NaN canonicalisation).
  constexpr std::array<std::pair<int64_t, at::ScalarType>, 3> kWords = {
      {{16, at::kComplexDouble}, {8, at::kLong}, {4, at::kInt}}};
  for (const auto& [bytes, word] : kWords) {
    if (bytes <= dst.element_size()) break;
    if (FitsWords(dst, bytes) && FitsWords(src, bytes)) {
      dst.view(word).copy_(src.view(word));
      return;
    }
  }
  dst.copy_(src);
}

}  // namespace raylight::models
