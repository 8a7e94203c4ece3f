// Our config.json and parameter table against transformers' MllamaConfig and MllamaForConditionalGeneration
// (built on the meta device: no weights are allocated).
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "llavacot/model/mllama_config.h"
#include "support/support.h"

using namespace llavacot;

TEST_CASE("transformers reads our config.json and names the same parameters with the same shapes", "[oracle][model]") {
  for (const char* name : {"tiny", "small", "demo", "llama-3.2-11b-vision"}) {
    INFO(name);
    auto cfg = model::load_preset(test::source_path(std::string("configs/models/") + name + ".json"));
    std::string dir = test::fresh_dir(std::string("model_oracle_") + name);
    std::ofstream(dir + "/config.json") << model::config_json(cfg);
    auto r = test::run_command(
        test::python_script_command("tests/oracle/model_oracle.py", "params " + test::shell_quote(dir)));
    INFO(r.output.substr(0, 3000));
    REQUIRE(r.exit_code == 0);
    // The JSON is the last line; transformers may print warnings before it.
    std::string out = r.output;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    auto ref = nlohmann::json::parse(out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1));
    std::map<std::string, std::vector<int64_t>> ours;
    for (const auto& p : model::parameter_table(cfg)) ours[p.name] = p.shape;
    std::map<std::string, std::vector<int64_t>> theirs = ref["params"].get<std::map<std::string, std::vector<int64_t>>>();
    CHECK(ours == theirs);
    CHECK(ref["text"]["rope_theta"].get<double>() == cfg.text.rope_theta);
    CHECK(ref["vision"]["attention_heads"].get<int64_t>() == cfg.vision.attention_heads);
  }
}
