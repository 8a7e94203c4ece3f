// File helpers: whole-file reads and crash-safe writes (temp file, fsync, rename), so a reader
// never sees a half-written file and an interrupted write leaves the old file intact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace llavacot::fs {

/// Reads a whole file; throws IoError naming the path.
std::string read_file(const std::string& path);

/// Writes `content` to `path` atomically (see AtomicFile).
void write_file_atomic(const std::string& path, const std::string& content);

/// A file written under a temporary name beside its target and renamed into place by commit().
/// Destroying it without commit() removes the temporary file and leaves the target untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends bytes; throws IoError on a short write.
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  /// Bytes written so far.
  uint64_t size() const { return written_; }
  /// fsyncs the data, renames the temporary file onto the target and fsyncs the directory.
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

/// fsyncs a directory so that a rename inside it is durable.
void fsync_dir(const std::string& dir);

/// Creates a directory and its parents; throws IoError on failure.
void create_dirs(const std::string& dir);

}  // namespace llavacot::fs
