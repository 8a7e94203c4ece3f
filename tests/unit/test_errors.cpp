#include <catch2/catch.hpp>

#include "llavacot/util/error.h"
#include "llavacot/util/process.h"

#include <cstdlib>
#include <vector>

using namespace llavacot;

TEST_CASE("exit codes distinguish usage from runtime errors", "[util]") {
  CHECK(UsageError("x").exit_code() == 2);
  CHECK(ConfigError("x").exit_code() == 2);
  CHECK(NotImplementedError("x").exit_code() == 2);
  CHECK(IoError("x").exit_code() == 1);
  CHECK(FormatError("x").exit_code() == 1);
  CHECK(RuntimeError("x").exit_code() == 1);
}

TEST_CASE("rethrow_with_context keeps the type and prepends context", "[util]") {
  try {
    try {
      throw FormatError("bad byte");
    } catch (...) {
      rethrow_with_context("reading a.safetensors");
    }
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()) == "reading a.safetensors: bad byte");
  }
  try {
    try {
      throw std::out_of_range("idx");
    } catch (...) {
      rethrow_with_context("ctx");
    }
    FAIL("no exception");
  } catch (const RuntimeError& e) {
    CHECK(std::string(e.what()) == "ctx: idx");
  }
}

TEST_CASE("LLAVACOT_CHECK throws the named type with the streamed message", "[util]") {
  int x = 3;
  CHECK_NOTHROW([&] { LLAVACOT_CHECK(x == 3, UsageError, "x is ", x); }());
  try {
    LLAVACOT_CHECK(x == 4, ConfigError, "x is ", x, ", want ", 4);
    FAIL("no exception");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "x is 3, want 4");
  }
}

TEST_CASE("the allocator policy stays out of the way when the environment sets one", "[util]") {
  ::setenv("LLAVACOT_SYSTEM_MALLOC", "1", 1);
  CHECK_FALSE(util::keep_heap_between_steps());
  ::unsetenv("LLAVACOT_SYSTEM_MALLOC");
  ::setenv("MALLOC_TOP_PAD_", "0", 1);
  CHECK_FALSE(util::keep_heap_between_steps());
  ::unsetenv("MALLOC_TOP_PAD_");
#ifdef __GLIBC__
  CHECK(util::keep_heap_between_steps());
  std::vector<char> big(40 << 20, 1);  // above the threshold: still served
  CHECK(big[123] == 1);
#endif
}
