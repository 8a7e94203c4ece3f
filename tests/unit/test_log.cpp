#include <catch2/catch.hpp>

#include "llavacot/util/log.h"

using namespace llavacot;

TEST_CASE("log levels parse and reject nonsense", "[util][log]") {
  CHECK(log::parse_level("debug") == log::Level::kDebug);
  CHECK(log::parse_level("warning") == log::Level::kWarn);
  CHECK_THROWS_AS(log::parse_level("loud"), UsageError);
}

TEST_CASE("log spec sets a default and per-component levels", "[util][log]") {
  log::configure("warn,data=debug, train = error");
  CHECK(log::enabled(log::Level::kDebug, "data"));
  CHECK_FALSE(log::enabled(log::Level::kTrace, "data"));
  CHECK_FALSE(log::enabled(log::Level::kInfo, "io"));
  CHECK(log::enabled(log::Level::kWarn, "io"));
  CHECK_FALSE(log::enabled(log::Level::kWarn, "train"));
  CHECK(log::enabled(log::Level::kError, "train"));
  log::configure("off");
  CHECK_FALSE(log::enabled(log::Level::kError, "io"));
  CHECK_THROWS_AS(log::configure("info,=debug"), UsageError);
  CHECK_THROWS_AS(log::configure("info,data=chatty"), UsageError);
  log::configure("info");
  CHECK(log::enabled(log::Level::kInfo, "io"));
}

TEST_CASE("rank-0 variant is silent on other ranks", "[util][log]") {
  log::configure("info");
  log::set_rank(1);
  CHECK(log::rank() == 1);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  LOG_INFO0("test", "value ", count());
  CHECK(evaluated == 0);  // the message is not even built off rank 0
  log::set_rank(0);
  LOG_INFO0("test", "value ", count());
  CHECK(evaluated == 1);
}
