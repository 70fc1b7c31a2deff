// ComfyUI's prompt-weight syntax, as its tokenizers read it (comfy/sd1_clip.py: escape_important,
// parse_parentheses, token_weights): "(word)" multiplies a part's weight by 1.1 per level,
// "(word:1.4)" sets it, "\(" and "\)" are literal parentheses. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace raylight::models::text {

struct WeightedText {
  std::string text;
  double weight = 1.0;
};

// The prompt's parts in order with their weights (ComfyUI's token_weights on the escaped text,
// each part unescaped). Unbalanced parentheses are read as ComfyUI reads them.
std::vector<WeightedText> ParsePromptWeights(absl::string_view prompt);

// Wan's own prompt cleaning (wan/modules/tokenizers.py, clean='whitespace'): HTML character
// references decoded (twice, as Wan's basic_clean does), every run of whitespace made one space,
// the ends trimmed. Numeric references and the XML five plus &nbsp; are decoded; ftfy's
// mojibake repair and HTML5's other named references are not reproduced.
std::string CleanPromptLikeWan(absl::string_view prompt);

}  // namespace raylight::models::text
