// Typed exceptions for llavacot. Library code throws; only the CLI's main catches,
// prints one line and exits (2 for usage/config errors, 1 for runtime failures).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace llavacot {

/// Base of every llavacot exception. `what()` is the full message, context included.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  /// Exit status the CLI uses for this kind of error.
  virtual int exit_code() const { return 1; }
};

/// Bad command line or bad use of an API by the caller.
class UsageError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

/// A configuration file or override that cannot be accepted.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

/// A feature that a later milestone implements.
class NotImplementedError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

/// Reading or writing a file or stream failed (missing file, permissions, short write, ...).
class IoError : public Error {
 public:
  using Error::Error;
};

/// Outside input (a file, a record, a header) is malformed.
class FormatError : public Error {
 public:
  using Error::Error;
};

/// Anything else that went wrong while running.
class RuntimeError : public Error {
 public:
  using Error::Error;
};

/// A command that ran other processes ends with their exit status (the message was printed already).
class ExitCode : public Error {
 public:
  explicit ExitCode(int code) : Error(str_cat_int("exit status ", code)), code_(code) {}
  int exit_code() const override { return code_; }

 private:
  static std::string str_cat_int(const char* text, int code) { return text + std::to_string(code); }
  int code_;
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <class T, class... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

/// Concatenates its arguments with operator<<; handy for building error messages.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append_all(os, args...);
  return os.str();
}

/// Rethrows the current exception (which must be a llavacot::Error or std::exception) with
/// `context` prepended ("context: original message"), keeping the original's type where it is one
/// of ours. Call only from inside a catch block.
[[noreturn]] void rethrow_with_context(const std::string& context);

}  // namespace llavacot

/// Throws `ErrorType` built from the streamed message parts when `cond` is false.
#define LLAVACOT_CHECK(cond, ErrorType, ...)                    \
  do {                                                          \
    if (!(cond)) throw ErrorType(::llavacot::str_cat(__VA_ARGS__)); \
  } while (0)
