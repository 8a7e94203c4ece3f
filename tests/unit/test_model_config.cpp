#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "llavacot/model/mllama_config.h"
#include "llavacot/util/error.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {
model::MllamaConfig preset(const std::string& name) {
  return model::load_preset(test::source_path("configs/models/" + name + ".json"));
}
}  // namespace

TEST_CASE("the 11B preset has the real shapes: 906 tensors, 10,670,220,835 parameters", "[model]") {
  auto cfg = preset("llama-3.2-11b-vision");
  auto table = model::parameter_table(cfg);
  CHECK(table.size() == 906);
  int64_t total = 0;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : table) {
    total += p.numel();
    CHECK(shapes.emplace(p.name, p.shape).second);  // names are unique
  }
  CHECK(total == 10'670'220'835LL);
  CHECK(total * 2 == 21'340'441'670LL);  // the index's total_size in bf16
  CHECK(shapes.at("vision_model.gated_positional_embedding.tile_embedding.weight") == std::vector<int64_t>{9, 8197120});
  CHECK(shapes.at("vision_model.pre_tile_positional_embedding.embedding.weight") == std::vector<int64_t>{9, 5120});
  CHECK(shapes.at("language_model.model.embed_tokens.weight") == std::vector<int64_t>{128264, 4096});
  CHECK(shapes.at("language_model.lm_head.weight") == std::vector<int64_t>{128256, 4096});
  CHECK(shapes.at("language_model.model.layers.3.cross_attn.k_norm.weight") == std::vector<int64_t>{128});
  CHECK(shapes.at("language_model.model.layers.4.self_attn.k_proj.weight") == std::vector<int64_t>{1024, 4096});
  CHECK(shapes.count("language_model.model.layers.3.self_attn.q_proj.weight") == 0);  // cross layers have none
  CHECK(shapes.at("multi_modal_projector.weight") == std::vector<int64_t>{4096, 7680});
  int vision = 0;
  for (const auto& p : table) vision += p.area == "vision";
  CHECK(vision == 509);
}

TEST_CASE("config.json round trip keeps every field and the rope layout", "[model]") {
  std::string dir = test::fresh_dir("model_config");
  for (const char* name : {"llama-3.2-11b-vision", "tiny", "small", "demo"}) {
    INFO(name);
    auto cfg = preset(name);
    std::ofstream(dir + "/config.json") << model::config_json(cfg);
    auto back = model::read_config(dir);
    CHECK(model::config_json(back) == model::config_json(cfg));
    CHECK_FALSE(back.rope_parameters_layout);
  }
  // v5 layout: rope_parameters holds rope_theta and the scaling.
  auto j = nlohmann::json::parse(model::config_json(preset("tiny")));
  auto& t = j["text_config"];
  t["rope_parameters"] = t["rope_scaling"];
  t["rope_parameters"]["rope_theta"] = 250000.0;
  t.erase("rope_scaling");
  t.erase("rope_theta");
  std::ofstream(dir + "/config.json", std::ios::trunc) << j.dump();
  auto v5 = model::read_config(dir + "/config.json");
  CHECK(v5.rope_parameters_layout);
  CHECK(v5.text.rope_theta == 250000.0);
  CHECK(v5.text.rope_type == "llama3");
  CHECK(v5.text.rope_factor == 8.0);
  CHECK_THAT(model::config_json(v5), Contains("rope_parameters"));
}

TEST_CASE("bad model configs are refused with every problem named", "[model][malformed]") {
  std::string dir = test::fresh_dir("model_config_bad");
  auto j = nlohmann::json::parse(model::config_json(preset("tiny")));
  j["text_config"]["num_key_value_heads"] = 3;
  j["text_config"]["cross_attention_layers"] = {1, 99};
  j["vision_config"]["image_size"] = 30;
  std::ofstream(dir + "/a.json") << j.dump();
  try {
    model::read_config(dir + "/a.json");
    FAIL("accepted");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Contains("a.json") && Contains("num_key_value_heads") && Contains("99") &&
                             Contains("image_size must be a multiple of patch_size"));
  }
  std::ofstream(dir + "/b.json") << R"({"model_type": "llama", "text_config": {}, "vision_config": {}})";
  CHECK_THROWS_WITH(model::read_config(dir + "/b.json"), Contains("expected mllama"));
  std::ofstream(dir + "/c.json") << R"({"text_config": {"hidden_size": "big"}, "vision_config": {}})";
  CHECK_THROWS_WITH(model::read_config(dir + "/c.json"), Contains("text_config.hidden_size"));
  std::ofstream(dir + "/d.json") << R"({"text_config": {}})";
  CHECK_THROWS_WITH(model::read_config(dir + "/d.json"), Contains("vision_config"));
  CHECK_THROWS_WITH(model::load_preset("nope"), Contains("unknown model preset 'nope'"));
}
