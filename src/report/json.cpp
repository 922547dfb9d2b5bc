// SPDX-License-Identifier: Apache-2.0
// The malloc-free JSON writer; see json.h.
#include "report/json.h"

namespace heapguard {
namespace {

// Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0.
// Overlong forms, surrogates and code points past U+10FFFF are not
// well-formed: a strict parser would reject the whole line for them.
size_t utf8_sequence(const unsigned char* s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
  return len;
}

void escape_byte(ReportBuffer& out, unsigned char c) {
  const char* hex = "0123456789abcdef";
  char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
  out.put(u, sizeof u);
}

}  // namespace

void JsonWriter::escape(ReportBuffer& out, const char* s, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c >= 0x80) {
      size_t len = utf8_sequence(p + i, n - i);
      // A stray byte becomes the code point of the same value (Latin-1):
      // the line stays valid and the byte is still recoverable.
      if (len == 0) {
        escape_byte(out, c);
        ++i;
      } else {
        out.put(s + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': out.put("\\\"", 2); break;
      case '\\': out.put("\\\\", 2); break;
      case '\n': out.put("\\n", 2); break;
      case '\r': out.put("\\r", 2); break;
      case '\t': out.put("\\t", 2); break;
      case '\b': out.put("\\b", 2); break;
      case '\f': out.put("\\f", 2); break;
      default:
        if (c < 0x20 || c == 0x7f) escape_byte(out, c);
        else out.ch(char(c));
    }
    ++i;
  }
}

void JsonWriter::reset() {
  depth_ = 0;
  after_key_ = false;
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (depth_ > 0 && depth_ <= kMaxDepth) {
    if (has_item_[depth_]) out_.ch(',');
    has_item_[depth_] = true;
  }
}

JsonWriter& JsonWriter::begin_object() {
  before_value();
  out_.ch('{');
  ++depth_;
  if (depth_ <= kMaxDepth) has_item_[depth_] = false;
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  out_.ch('}');
  if (depth_ > 0) --depth_;
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  before_value();
  out_.ch('[');
  ++depth_;
  if (depth_ <= kMaxDepth) has_item_[depth_] = false;
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  out_.ch(']');
  if (depth_ > 0) --depth_;
  return *this;
}

JsonWriter& JsonWriter::key(const char* name) {
  before_value();
  out_.ch('"');
  size_t n = 0;
  while (name[n] != '\0') ++n;
  escape(out_, name, n);
  out_.put("\":", 2);
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::string(const char* s) {
  if (s == nullptr) return null();
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return string(s, n);
}

JsonWriter& JsonWriter::string(const char* s, size_t n) {
  before_value();
  out_.ch('"');
  escape(out_, s, n);
  out_.ch('"');
  return *this;
}

JsonWriter& JsonWriter::number(uint64_t v) {
  before_value();
  out_.dec(v);
  return *this;
}

JsonWriter& JsonWriter::hex_string(uint64_t v) {
  before_value();
  out_.ch('"').hex(v).ch('"');
  return *this;
}

JsonWriter& JsonWriter::boolean(bool v) {
  before_value();
  out_.str(v ? "true" : "false");
  return *this;
}

JsonWriter& JsonWriter::null() {
  before_value();
  out_.str("null");
  return *this;
}

}  // namespace heapguard
