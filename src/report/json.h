// SPDX-License-Identifier: Apache-2.0
// A tiny JSON writer (layer report) for report_format=json: it streams
// through a ReportBuffer, so it never allocates, and it escapes every string
// (quotes, backslashes, control bytes, and bytes that are not valid UTF-8,
// which appear in file names and symbols) so that one report is always one
// parseable line whatever the program's names contain.
#pragma once

#include <cstddef>
#include <cstdint>

#include "report/sink.h"

namespace heapguard {

class JsonWriter {
 public:
  // Containers nest at most this deep; deeper ones are still written, but
  // commas inside them are no longer tracked (the reporter needs 5).
  static constexpr unsigned kMaxDepth = 16;

  explicit constexpr JsonWriter(ReportBuffer& out) : out_(out) {}

  // Forgets the nesting state: the next value starts a new document.
  void reset();

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // The name of the next member; the value follows with one call below.
  JsonWriter& key(const char* name);
  JsonWriter& string(const char* s);              // nullptr writes null
  JsonWriter& string(const char* s, size_t n);
  JsonWriter& number(uint64_t v);
  JsonWriter& hex_string(uint64_t v);             // "0x..."
  JsonWriter& boolean(bool v);
  JsonWriter& null();

  // Pure: writes the escaped form of s[0, n) (without quotes) to out.
  static void escape(ReportBuffer& out, const char* s, size_t n);

 private:
  void before_value();

  ReportBuffer& out_;
  unsigned depth_ = 0;
  bool after_key_ = false;
  bool has_item_[kMaxDepth + 1] = {};
};

}  // namespace heapguard
