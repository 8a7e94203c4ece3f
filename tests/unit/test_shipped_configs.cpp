// Every YAML shipped under configs/ must load and validate, alone and layered on the demo config.
#include <catch2/catch.hpp>

#include <filesystem>

#include "llavacot/config/loader.h"
#include "support/support.h"

using namespace llavacot;

TEST_CASE("every shipped config loads and validates", "[config]") {
  namespace fs = std::filesystem;
  int count = 0;
  for (const auto& entry : fs::recursive_directory_iterator(test::source_path("configs"))) {
    if (!entry.is_regular_file() || entry.path().extension() != ".yaml") continue;
    // Model architecture presets are Hugging Face style configs, checked by the model suite.
    if (entry.path().parent_path().filename() == "models") continue;
    std::string path = entry.path().string();
    INFO(path);
    Config cfg;
    REQUIRE_NOTHROW(cfg = config::load({path}, {}));
    CHECK_NOTHROW(cfg.validate());
    ++count;
  }
  CHECK(count >= 5);
}
