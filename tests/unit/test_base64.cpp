#include <catch2/catch.hpp>

#include "llavacot/util/base64.h"

using namespace llavacot;

TEST_CASE("base64 decodes standard text and rejects malformed input", "[util]") {
  std::string out;
  CHECK(base64_decode("aGVsbG8=", out));
  CHECK(out == "hello");
  CHECK(base64_decode("aGVsbG8h", out));
  CHECK(out == "hello!");
  CHECK(base64_decode("aGVs\nbG8=", out, /*skip_whitespace=*/true));
  CHECK(out == "hello");
  CHECK_FALSE(base64_decode("aGVs\nbG8=", out));  // whitespace only where allowed
  CHECK_FALSE(base64_decode("aGVsbG8", out));     // not a multiple of 4
  CHECK_FALSE(base64_decode("aG=sbG8=", out));    // data after padding
  CHECK_FALSE(base64_decode("a===", out));
  CHECK_FALSE(base64_decode("aGV$bG8=", out));
  CHECK_FALSE(base64_decode("", out));
}
