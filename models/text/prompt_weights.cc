#include "models/text/prompt_weights.h"

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"

namespace raylight::models::text {
namespace {

// Escaped parentheses become control pairs no prompt types, as ComfyUI's escape_important does.
const std::string& EscapedOpen() {
  static const std::string kOpen("\0\2", 2);
  return kOpen;
}
const std::string& EscapedClose() {
  static const std::string kClose("\0\1", 2);
  return kClose;
}

std::string Escape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\\)", EscapedClose()}, {"\\(", EscapedOpen()}});
}

std::string Unescape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{EscapedClose(), ")"}, {EscapedOpen(), "("}});
}

// parse_parentheses: top-level "( ... )" groups and the text between them. The nesting level
// may go negative on a stray ")" exactly as it does in ComfyUI (the character is then kept).
std::vector<std::string> ParseParentheses(absl::string_view text) {
  std::vector<std::string> parts;
  std::string current;
  int nesting = 0;
  for (char c : text) {  // UTF-8 continuation bytes never equal '(' or ')'
    if (c == '(') {
      if (nesting == 0) {
        if (!current.empty()) parts.push_back(std::move(current));
        current.assign(1, '(');
      } else {
        current += c;
      }
      ++nesting;
    } else if (c == ')') {
      --nesting;
      if (nesting == 0) {
        current += ')';
        parts.push_back(std::move(current));
        current.clear();
      } else {
        current += c;
      }
    } else {
      current += c;
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

// Python's float() on the text after the last ':' (surrounding whitespace allowed).
std::optional<double> PythonFloat(absl::string_view text) {
  std::string trimmed(absl::StripAsciiWhitespace(text));
  if (trimmed.empty()) return std::nullopt;
  const std::string lower = absl::AsciiStrToLower(trimmed);
  if (lower.find('x') != std::string::npos) return std::nullopt;  // strtod's hex floats
  char* end = nullptr;
  const double value = std::strtod(trimmed.c_str(), &end);
  if (end != trimmed.c_str() + trimmed.size()) return std::nullopt;
  return value;
}

void TokenWeights(absl::string_view text, double weight, std::vector<WeightedText>* out) {
  for (const std::string& part : ParseParentheses(text)) {
    if (part.size() >= 2 && part.front() == '(' && part.back() == ')') {
      std::string inner = part.substr(1, part.size() - 2);
      double inner_weight = weight * 1.1;
      const size_t colon = inner.rfind(':');
      if (colon != std::string::npos && colon > 0) {
        if (auto explicit_weight = PythonFloat(absl::string_view(inner).substr(colon + 1))) {
          inner_weight = *explicit_weight;
          inner.resize(colon);
        }
      }
      TokenWeights(inner, inner_weight, out);
    } else {
      out->push_back({part, weight});
    }
  }
}

void AppendUtf8(uint32_t code, std::string* out) {
  if (code < 0x80) {
    *out += static_cast<char>(code);
  } else if (code < 0x800) {
    *out += static_cast<char>(0xC0 | (code >> 6));
    *out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    *out += static_cast<char>(0xE0 | (code >> 12));
    *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (code >> 18));
    *out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

std::string UnescapeHtml(absl::string_view text) {
  static const std::pair<absl::string_view, absl::string_view> kNamed[] = {
      {"amp;", "&"},   {"lt;", "<"},   {"gt;", ">"},
      {"quot;", "\""}, {"apos;", "'"}, {"nbsp;", "\xC2\xA0"}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    const absl::string_view rest = text.substr(i + 1);
    bool decoded = false;
    for (const auto& [name, value] : kNamed) {
      if (absl::StartsWith(rest, name)) {
        out.append(value.data(), value.size());
        i += 1 + name.size();
        decoded = true;
        break;
      }
    }
    if (!decoded && absl::StartsWith(rest, "#")) {
      const bool hex = rest.size() > 1 && (rest[1] == 'x' || rest[1] == 'X');
      size_t j = hex ? 2 : 1;
      uint32_t code = 0;
      const size_t digits_start = j;
      while (j < rest.size() && j - digits_start < 8 &&
             (hex ? absl::ascii_isxdigit(rest[j]) : absl::ascii_isdigit(rest[j]))) {
        const char c = absl::ascii_tolower(rest[j]);
        code = code * (hex ? 16 : 10) + (absl::ascii_isdigit(c) ? c - '0' : c - 'a' + 10);
        ++j;
      }
      if (j > digits_start && code > 0 && code <= 0x10FFFF && !(code >= 0xD800 && code < 0xE000)) {
        AppendUtf8(code, &out);
        i += 1 + j + (j < rest.size() && rest[j] == ';' ? 1 : 0);
        decoded = true;
      }
    }
    if (!decoded) out += text[i++];
  }
  return out;
}

// The length of a Unicode whitespace character (Python's \s on str) at `text[i]`, or 0.
size_t WhitespaceAt(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && i + 1 < text.size() && (byte(i + 1) == 0x85 || byte(i + 1) == 0xA0)) return 2;
  if (i + 2 >= text.size()) return 0;
  const uint32_t code = ((c & 0x0F) << 12) | ((byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
  if ((c & 0xF0) != 0xE0) return 0;
  const bool space = code == 0x1680 || (code >= 0x2000 && code <= 0x200A) || code == 0x2028 ||
                     code == 0x2029 || code == 0x202F || code == 0x205F || code == 0x3000;
  return space ? 3 : 0;
}

}  // namespace

std::vector<WeightedText> ParsePromptWeights(absl::string_view prompt) {
  std::vector<WeightedText> parts;
  TokenWeights(Escape(prompt), 1.0, &parts);
  for (WeightedText& part : parts) part.text = Unescape(part.text);
  return parts;
}

std::string CleanPromptLikeWan(absl::string_view prompt) {
  const std::string unescaped = UnescapeHtml(UnescapeHtml(prompt));
  std::string out;
  bool pending_space = false;
  for (size_t i = 0; i < unescaped.size();) {
    if (const size_t n = WhitespaceAt(unescaped, i); n > 0) {
      pending_space = !out.empty();
      i += n;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += unescaped[i++];
  }
  return out;
}

}  // namespace raylight::models::text
