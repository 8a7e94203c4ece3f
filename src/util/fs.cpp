#include "llavacot/util/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "llavacot/util/error.h"

namespace llavacot::fs {

namespace {
std::string errno_text() { return std::strerror(errno); }

std::string parent_dir(const std::string& path) {
  std::filesystem::path p(path);
  auto parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}
}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(str_cat("cannot open '", path, "': ", errno_text()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(str_cat("error reading '", path, "'"));
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::random_device rd;
  tmp_path_ = str_cat(path_, ".tmp.", ::getpid(), ".", std::hex, rd());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(str_cat("cannot create '", tmp_path_, "': ", errno_text()));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (committed_) throw UsageError(str_cat("write to '", path_, "' after commit"));
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError(str_cat("write to '", tmp_path_, "' failed: ", errno_text()));
    }
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void AtomicFile::commit() {
  if (committed_) return;
  if (::fsync(fd_) != 0) throw IoError(str_cat("fsync of '", tmp_path_, "' failed: ", errno_text()));
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw IoError(str_cat("close of '", tmp_path_, "' failed: ", errno_text()));
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    throw IoError(str_cat("cannot rename '", tmp_path_, "' to '", path_, "': ", errno_text()));
  committed_ = true;
  fsync_dir(parent_dir(path_));
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems refuse to open directories
  ::fsync(fd);
  ::close(fd);
}

void create_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(str_cat("cannot create directory '", dir, "': ", ec.message()));
}

}  // namespace llavacot::fs
