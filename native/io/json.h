// A small JSON reader/writer for file headers (safetensors). Objects keep their members in file order, because
// the order of a safetensors header is meaningful to us (it is the writer's tensor order).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ctclip::io {

struct JsonValue {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  std::string text;                                        // String: the decoded string; Number: the literal as written
  std::vector<JsonValue> items;                            // Array
  std::vector<std::pair<std::string, JsonValue>> members;  // Object, in file order

  bool IsInteger() const;                               // a Number literal without fraction/exponent
  bool AsInt64(int64_t* out) const;                     // false when not an integer in int64 range
  const JsonValue* Find(const std::string& key) const;  // first member with that key, or nullptr
};

// Parses `text` completely. On malformed input throws std::runtime_error with the byte offset and what was wrong.
JsonValue ParseJson(const std::string& text);

// What a document would cost to parse, counted in one pass without allocating (for limits checked before
// ParseJson builds anything): members of the outermost object, and structural separators (',' and ':') anywhere,
// a bound on the number of values. Strings and escapes are skipped; malformed text is left to ParseJson.
struct JsonCounts {
  uint64_t topLevelMembers = 0;
  uint64_t separators = 0;
};
JsonCounts CountJson(const std::string& text);

// A JSON string literal (with quotes), escaping quotes, backslashes and control characters.
std::string JsonQuote(const std::string& s);

}  // namespace ctclip::io
