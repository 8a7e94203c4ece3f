// Reading LLaVA-CoT-100k as released: train.jsonl (one record per line: id, image, conversations) plus an image
// root folder (llava-cot spec §1). The file is indexed by byte offsets in one pass over a memory map, so a
// 100k-record file opens in well under a second and records are parsed only when asked for. Every record is
// validated: human/gpt turns, the four stage tags in every answer, image paths that stay under the root.
// LibTorch-free.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llavacot/util/error.h"

namespace llavacot::data {

/// Why a record is refused. reason_name() gives the name used in logs, counters and bad_records.jsonl.
enum class BadReason {
  kMalformedJson,   // not a JSON object
  kMissingField,    // id / conversations missing or of the wrong type
  kBadTurns,        // turns not human, gpt, human, gpt, ... ending with gpt; unknown "from"
  kEmptyTurn,       // a turn with no text (after removing <image> placeholders)
  kStages,          // an answer without the four stages in order, each closed
  kTextOnly,        // no image, and text-only records are not allowed
  kImagePath,       // an absolute image path or one that leaves the root with ".."
  kImageMissing,    // the image file does not exist
  kImageCorrupt,    // the image does not decode (found while preprocessing)
  kTooLong,         // longer than max_seq_len under the drop policy (found while preprocessing)
};
const char* reason_name(BadReason reason);

/// A refused record: the reason, the 1-based line and the id (when it could be read).
class BadRecord : public FormatError {
 public:
  /// `file` (optional) prefixes the message as FILE:LINE.
  BadRecord(BadReason reason, int64_t line, std::string id, const std::string& detail, const std::string& file = "");
  BadReason reason() const { return reason_; }
  int64_t line() const { return line_; }
  const std::string& id() const { return id_; }
  const std::string& detail() const { return detail_; }

 private:
  BadReason reason_;
  int64_t line_;
  std::string id_, detail_;
};

struct Turn {
  std::string from;   // "human" or "gpt"
  std::string value;  // human turns without their leading/trailing <image> placeholders
};

/// One validated record.
struct Record {
  int64_t line = 0;         // 1-based line in the file
  std::string id;           // as a string (numeric ids are printed)
  std::string image;        // as written in the file; "" for a text-only record
  std::string image_path;   // resolved under the image root; "" for a text-only record
  std::vector<Turn> turns;  // human, gpt, human, gpt, ...
  bool has_image() const { return !image.empty(); }
};

/// "" when `answer` holds <SUMMARY>, <CAPTION>, <REASONING> and <CONCLUSION> in that order, each closed,
/// non-empty, once, with nothing but whitespace outside them; otherwise what is wrong.
std::string check_stages(std::string_view answer);

/// Removes leading and trailing "<image>" placeholders (and the whitespace around them) from a human turn.
std::string strip_image_placeholders(std::string_view text);

/// The image path of a record resolved under `root`; throws BadRecord(kImagePath) for an absolute path or one
/// with a ".." component.
std::string resolve_image_path(const std::string& root, const std::string& image, int64_t line, const std::string& id);

/// Byte offsets of the non-blank lines of a text file, built in one pass over a read-only memory map.
class JsonlIndex {
 public:
  /// Throws IoError when the file cannot be opened or mapped.
  static JsonlIndex build(const std::string& path);
  const std::string& path() const { return path_; }
  size_t size() const { return starts_.size(); }
  /// The text of entry i (no line terminator, a trailing '\r' removed).
  std::string_view text(size_t i) const;
  /// Its 1-based line number in the file.
  int64_t line_number(size_t i) const { return line_numbers_[i]; }

 private:
  struct Map;
  std::string path_;
  std::shared_ptr<Map> map_;
  std::vector<uint64_t> starts_;
  std::vector<uint32_t> lengths_;
  std::vector<int64_t> line_numbers_;
};

struct ReaderOptions {
  std::string image_root;        // image paths resolve under it
  bool allow_text_only = true;   // records without "image"
  bool check_image_exists = true;
};

/// Random access to the records of a train.jsonl.
class LlavaCotReader {
 public:
  LlavaCotReader(const std::string& jsonl_path, ReaderOptions options);
  size_t size() const { return index_.size(); }
  /// Parses and validates entry i; throws BadRecord naming the file, line, id and reason.
  Record get(size_t i) const;
  const JsonlIndex& index() const { return index_; }

 private:
  Record parse(size_t i) const;

  JsonlIndex index_;
  ReaderOptions options_;
};

/// Counts refused records by reason and appends each to bad_records.jsonl ({"line", "id", "reason",
/// "detail"}), flushing every line so a crash loses nothing already seen. Safe to share between threads.
class BadRecordLog {
 public:
  /// `path` = "" counts without writing.
  explicit BadRecordLog(const std::string& path = "");
  ~BadRecordLog();
  void add(const BadRecord& bad);
  std::map<std::string, int64_t> counts() const;
  int64_t total() const;
  /// "12 skipped: 7 stages, 5 image_missing" (or "no record skipped").
  std::string summary() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> counts_;
  struct Sink;
  std::unique_ptr<Sink> sink_;
};

}  // namespace llavacot::data
