// Memory.context in one C++ call: the context for the next model call, assembled from the store and
// packed under a token budget (the packer is context/packer.h; this file decides what goes in).
//
// Four sections, as documented in python/recallcore/context.py:
//   state    (pinned, priority -2): the namespace's state mapping, one "key: json" item per key;
//   pinned   (pinned, priority -1): valid records of the pinned kinds, valued by importance;
//   recent   (priority 0): the session's last `recent_turns` turns, newer ones valued higher;
//   memories (priority 1): what recall finds, valued 2^(-(rank-1)/5) (halving every 5 ranks: fused
//            scores are nearly flat and would let many short low-ranked items crowd out a better one).
// Records are rendered "YYYY-MM-DD role: text" (turns) or "YYYY-MM-DD (kind) text", or by the
// caller's renderer. Layout: state, pinned, memories in the requested order, recent turns in time
// order (closest to the question). The rendered text is counted once more at the end with the
// store's counter, dropping the least valuable non-pinned items while it exceeds the budget: counters
// are not additive across pieces (BPE merges across a prefix; the estimator rounds once per text).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "context/packer.h"
#include "engine/memory.h"

namespace recallcore::engine {

struct ContextRequest {
  RecallQuery recall;  // namespace, query text/vector, k and every recall option
  std::optional<std::string> session;
  std::uint32_t budget = 0;
  std::size_t recent_turns = 5;
  bool include_state = true;
  std::vector<std::string> pinned_kinds;
  context::Order order = context::Order::edges;
  std::string separator = "\n";
  std::function<std::size_t(std::string_view)> count;  // the store's token counter
  // Renders a record's item from its body (text or summary) and its UTC date ("YYYY-MM-DD", the one
  // the default prefix uses); empty: the default prefix.
  std::function<std::string(const RecordOut&, std::string_view section, std::string_view body, std::string_view date)>
      render;
};

struct ContextEntry {
  std::string section;              // state | pinned | recent | memories
  std::string key;                  // state entries: the key
  std::optional<RecordOut> record;  // the others
  bool summary = false;             // fidelity
  std::uint32_t tokens = 0;         // of the rendered item (framing included)
  float score = 0;
  std::string text;                 // the rendered item
};

struct ContextDropped {
  std::string section, key, reason;
  std::uint64_t id = 0;
  float score = 0;
};

struct ContextResult {
  std::vector<ContextEntry> items;  // in context order
  std::vector<ContextDropped> dropped;
  std::uint64_t tokens = 0;
  std::string text;  // the items joined by the separator
};

ContextResult assemble_context(Memory& memory, const ContextRequest& req);

}  // namespace recallcore::engine
