// SPDX-License-Identifier: Apache-2.0
#include "frontend/stats_format.h"

namespace heapguard {
namespace {

void emit(TextSink sink, void* context, const MessageBuilder& m) { sink(context, m.data(), m.size()); }

// glibc prints "%10u"; keep the columns for scripts that parse them.
constexpr unsigned kColumn = 10;

}  // namespace

void format_malloc_stats(const HeapFigures& f, TextSink sink, void* context) {
  size_t small_system = f.small_backed_bytes;
  size_t small_in_use = f.small_in_use_bytes;
  size_t large_system = f.large.live_mapped_bytes + f.large.cached_bytes;
  MessageBuilder m;
  m.str("Arena 0:\nsystem bytes     = ");
  m.dec(small_system, kColumn).str("\nin use bytes     = ");
  m.dec(small_in_use, kColumn).str("\nTotal (incl. mmap):\nsystem bytes     = ");
  m.dec(small_system + large_system, kColumn).str("\nin use bytes     = ");
  m.dec(small_in_use + f.large.live_mapped_bytes, kColumn).str("\nmax mmap regions = ");
  m.dec(f.large.peak_blocks, kColumn).str("\nmax mmap bytes   = ");
  m.dec(f.large.peak_mapped_bytes, kColumn).ch('\n');
  emit(sink, context, m);

  MessageBuilder h;
  h.str("HeapGuard: mode ").str(mode_name(options().mode)).str(", live blocks ").dec(f.small_live_blocks + f.large.blocks)
      .str(" (").dec(f.large.blocks).str(" large), thread caches ").dec(f.thread_caches).str(", cached ")
      .dec(f.small_cached_bytes + f.large.cached_bytes).str(" bytes, returned to the OS ").dec(f.released_bytes_total)
      .str(" bytes, metadata ").dec(f.metadata_bytes).str(" bytes\n");
  emit(sink, context, h);
  if (f.small_quarantined_blocks + f.large.quarantined_blocks != 0) {
    MessageBuilder q;
    q.str("HeapGuard: quarantine ").dec(f.small_quarantined_blocks + f.large.quarantined_blocks).str(" blocks (")
        .dec(f.large.quarantined_blocks).str(" large), ").dec(f.small_quarantined_bytes + f.large.quarantined_bytes)
        .str(" bytes\n");
    emit(sink, context, q);
  }
}

void format_malloc_info(const HeapFigures& f, TextSink sink, void* context) {
  MessageBuilder m;
  m.str("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
  emit(sink, context, m);
  size_t free_count = 0, free_bytes = 0;
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const auto& pc = f.per_class[c];
    size_t count = pc.cached + pc.free;
    if (count == 0) continue;
    free_count += count;
    free_bytes += count * pc.slot_size;
    MessageBuilder line;
    line.str("  <size from=\"").dec(c > 1 ? kSizeClasses[c - 1].usable + 1 : 0).str("\" to=\"").dec(kSizeClasses[c].usable)
        .str("\" total=\"").dec(count * pc.slot_size).str("\" count=\"").dec(count).str("\"/>\n");
    emit(sink, context, line);
  }
  MessageBuilder t;
  t.str("</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"").dec(free_count)
      .str("\" size=\"").dec(free_bytes).str("\"/>\n<system type=\"current\" size=\"").dec(f.small_backed_bytes)
      .str("\"/>\n<system type=\"max\" size=\"").dec(f.small_backed_bytes).str("\"/>\n<aspace type=\"total\" size=\"")
      .dec(f.small_backed_bytes).str("\"/>\n<aspace type=\"mprotect\" size=\"").dec(f.small_backed_bytes)
      .str("\"/>\n</heap>\n");
  emit(sink, context, t);
  MessageBuilder e;
  e.str("<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"").dec(free_count)
      .str("\" size=\"").dec(free_bytes).str("\"/>\n<total type=\"mmap\" count=\"").dec(f.large.blocks)
      .str("\" size=\"").dec(f.large.live_mapped_bytes).str("\"/>\n<system type=\"current\" size=\"")
      .dec(f.small_backed_bytes + f.large.live_mapped_bytes + f.large.cached_bytes)
      .str("\"/>\n<system type=\"max\" size=\"").dec(f.small_backed_bytes + f.large.peak_mapped_bytes)
      .str("\"/>\n<aspace type=\"total\" size=\"").dec(f.small_backed_bytes + f.large.live_mapped_bytes)
      .str("\"/>\n<aspace type=\"mprotect\" size=\"").dec(f.small_backed_bytes).str("\"/>\n</malloc>\n");
  emit(sink, context, e);
}

}  // namespace heapguard
