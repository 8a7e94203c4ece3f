// Export and import of Hugging Face model directories: a demo model exported in fp32 (sharded), bf16 and fp16;
// the files and config.json fields transformers needs; the index and headers read by a stdlib-only Python reader;
// bit-exact reimport; conversions equal to torch's; transformers' from_pretrained and AutoProcessor loading the
// export offline and agreeing with us on an image prompt (ids, pixels, logits); the CLI taking the exported
// directory for generate and train; refusals and inspect's checks of broken directories.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/io/safetensors.h"
#include "llavacot/io/sharded.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/export.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/chat_format.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/error.h"
#include "llavacot/vision/image.h"
#include "llavacot/vision/image_processor.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;
namespace stdfs = std::filesystem;

namespace {

struct Exported {
  test::TrainedDemo trained;
  std::string base, fp32, bf16, fp16;
};

test::CommandResult export_cmd(const std::string& checkpoint, const std::string& out, const std::string& extra) {
  return test::run_command(test::cli() + " export --checkpoint " + test::shell_quote(checkpoint) + " --out " +
                           test::shell_quote(out) + " " + extra);
}

const Exported& exported() {
  static const Exported e = [] {
    Exported x;
    x.trained = test::train_demo_model("export_" + std::to_string(::getpid()), 40, 3);
    x.base = test::fresh_dir("export_out_" + std::to_string(::getpid()));
    x.fp32 = x.base + "/fp32";
    x.bf16 = x.base + "/bf16";
    x.fp16 = x.base + "/fp16";
    for (const auto& [dir, extra] : std::vector<std::pair<std::string, std::string>>{
             {x.fp32, "--dtype fp32 --max-shard-size 300000"}, {x.bf16, "--dtype bf16"}, {x.fp16, "--dtype fp16"}}) {
      auto r = export_cmd(x.trained.model, dir, extra);
      if (r.exit_code != 0) throw std::runtime_error("export failed:\n" + r.output);
    }
    return x;
  }();
  return e;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

void require_ok(const test::CommandResult& r) {
  INFO(r.output.substr(r.output.size() > 4000 ? r.output.size() - 4000 : 0));
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("export writes the files and config fields transformers needs; the index passes a stdlib-only reader",
          "[oracle][export]") {
  const auto& e = exported();
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json",
                        "tokenizer_config.json", "special_tokens_map.json", "chat_template.json", "preprocessor_config.json",
                        "README.md"})
    CHECK(stdfs::exists(e.fp32 + "/" + f));
  CHECK(stdfs::exists(e.bf16 + "/model.safetensors"));  // one shard: no index, as transformers writes it
  // Every field of spec §1.3.
  auto c = read_json(e.fp32 + "/config.json");
  for (const char* k : {"architectures", "image_token_index", "model_type", "torch_dtype", "text_config", "vision_config"})
    CHECK(c.contains(k));
  CHECK(c["architectures"] == nlohmann::json::array({"MllamaForConditionalGeneration"}));
  CHECK(c["model_type"] == "mllama");
  CHECK(c["torch_dtype"] == "float32");
  CHECK(read_json(e.bf16 + "/config.json")["torch_dtype"] == "bfloat16");
  for (const char* k : {"model_type", "vocab_size", "hidden_size", "hidden_act", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "intermediate_size", "rms_norm_eps", "rope_theta", "rope_scaling",
                        "max_position_embeddings", "cross_attention_layers", "dropout", "initializer_range", "use_cache",
                        "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype"}) {
    INFO(k);
    CHECK(c["text_config"].contains(k));
  }
  for (const char* k : {"model_type", "hidden_size", "hidden_act", "attention_heads", "num_hidden_layers", "num_global_layers",
                        "intermediate_size", "image_size", "patch_size", "num_channels", "norm_eps", "max_num_tiles",
                        "vision_output_dim", "intermediate_layers_indices", "supported_aspect_ratios", "initializer_range",
                        "torch_dtype"}) {
    INFO(k);
    CHECK(c["vision_config"].contains(k));
  }
  auto p = read_json(e.fp32 + "/preprocessor_config.json");
  CHECK(p["image_processor_type"] == "MllamaImageProcessor");
  CHECK(p["size"]["height"] == c["vision_config"]["image_size"]);
  CHECK(p["max_image_tiles"] == c["vision_config"]["max_num_tiles"]);
  CHECK(p["resample"] == 2);
  auto t = read_json(e.fp32 + "/tokenizer_config.json");
  CHECK(t["chat_template"] == model::chat_template());
  CHECK(t["bos_token"] == "<|begin_of_text|>");
  CHECK(t["added_tokens_decoder"].size() > 3);
  auto g = read_json(e.fp32 + "/generation_config.json");
  CHECK(g.contains("eos_token_id"));
  // The index and every shard header, read with the Python standard library alone.
  for (const auto& dir : {e.fp32, e.bf16}) {
    auto r = test::run_command(test::python_script_command("tests/oracle/hf_dir_reader.py", test::shell_quote(dir)));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("\"ok\": true"));
  }
  auto reader = read_json(e.fp32 + "/model.safetensors.index.json");
  CHECK(reader["weight_map"].size() > 10);
  std::ifstream card(e.fp32 + "/README.md");
  std::string text((std::istreambuf_iterator<char>(card)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Contains("library_name: transformers") && Contains("| training data | `train.jsonl` |") &&
                       Contains("## Evaluation"));
  CHECK(text.find(e.trained.demo) == std::string::npos);  // no local paths in the card
}

TEST_CASE("export then import is bit-exact; bf16 and fp16 equal torch's conversions; tokenizer files reload",
          "[oracle][export]") {
  const auto& e = exported();
  auto src = safetensors::Checkpoint::open(e.trained.model);
  auto out = safetensors::Checkpoint::open(e.fp32);
  CHECK(out.files().size() > 1);  // sharded at 300 kB
  REQUIRE(out.names().size() == src.names().size());
  for (const auto& name : src.names()) {
    INFO(name);
    const auto key = model::canonical_key(name);
    REQUIRE(out.contains(key));
    CHECK(torch::equal(src.get(name), out.get(key)));
  }
  // Loaded back into a model, the exported weights are the trained ones.
  auto a = model::load_pretrained(e.trained.model, torch::kFloat32);
  auto b = model::load_pretrained(e.fp32, torch::kFloat32);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) CHECK(torch::equal(item.value(), pb[item.key()]));
  for (const auto& [dir, dtype] : std::vector<std::pair<std::string, std::string>>{{e.bf16, "bf16"}, {e.fp16, "fp16"}}) {
    auto r = test::run_command(test::python_script_command(
        "tests/oracle/export_oracle.py",
        "convert " + test::shell_quote(e.trained.model) + " " + test::shell_quote(dir) + " " + dtype));
    require_ok(r);
  }
  // The exported tokenizer.json gives our ids back exactly.
  auto t1 = text::load_tokenizer(e.trained.model + "/tokenizer.json"), t2 = text::load_tokenizer(e.fp32 + "/tokenizer.json");
  for (const std::string s : {"Describe this image.", "<SUMMARY>x</SUMMARY>", "<|image|>hi<|eot_id|>"})
    CHECK(t1->encode(s, true) == t2->encode(s, true));
}

TEST_CASE("transformers loads the export offline (model and AutoProcessor) and gives our logits on an image prompt",
          "[oracle][export]") {
  const auto& e = exported();
  const auto scratch = test::fresh_dir("export_oracle_" + std::to_string(::getpid()));
  const std::string prompt = "How many shapes are there?";
  require_ok(test::run_command(test::python_script_command(
      "tests/oracle/export_oracle.py", "load " + test::shell_quote(e.fp32) + " " + test::shell_quote(e.trained.image) + " " +
                                           test::shell_quote(prompt) + " " + test::shell_quote(scratch + "/ref.safetensors"))));
  std::map<std::string, torch::Tensor> ref;
  for (auto& [name, t] : safetensors::load_all(scratch + "/ref.safetensors")) ref[name] = t.clone();

  // Our inputs for the same turn: the chat format and the image processor.
  auto tok = text::load_tokenizer(e.fp32 + "/tokenizer.json");
  auto m = model::load_pretrained(e.fp32, torch::kFloat32);
  m->eval();
  m->runtime.vision_taps = model::VisionTaps::kLayerOutputs;  // as the pinned transformers release taps them
  text::ChatFormat chat(*tok);
  text::Message user{"user", {text::ContentPart::image(), text::ContentPart::from_text(prompt)}};
  const auto ids = chat.render({user}, true).ids;
  const auto ref_ids = ref.at("input_ids");
  REQUIRE(ref_ids.size(1) == static_cast<int64_t>(ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) CHECK(ref_ids[0][static_cast<int64_t>(i)].item<int64_t>() == ids[i]);
  const auto& v = m->config.vision;
  vision::ImageProcessorConfig pc;
  pc.tile_size = v.image_size;
  pc.max_tiles = v.max_num_tiles;
  pc.aspect_ratios = v.supported_aspect_ratios;
  vision::ImageProcessor processor(pc);
  torch::Tensor pixels, ar_ids, ar_mask;
  std::vector<std::vector<int64_t>> tiles;
  processor.process_batch({{vision::decode_image_file(e.trained.image)}}, pixels, ar_ids, ar_mask, &tiles);
  CHECK(torch::equal(ar_ids, ref.at("aspect_ratio_ids").to(torch::kInt64)));
  CHECK(torch::equal(ar_mask, ref.at("aspect_ratio_mask").to(torch::kInt64)));
  CHECK((pixels - ref.at("pixel_values")).abs().max().item<double>() < 1e-5);
  std::vector<int32_t> ids32(ids.begin(), ids.end());
  auto xmask = vision::cross_attention_mask({ids32}, tiles, m->config.image_token_index, v.max_num_tiles, 1);
  CHECK(torch::equal(xmask.to(torch::kInt64), ref.at("cross_attention_mask").to(torch::kInt64)));
  model::MllamaInputs in;
  in.input_ids = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64).unsqueeze(0);
  in.pixel_values = pixels;
  in.aspect_ratio_ids = ar_ids;
  in.aspect_ratio_mask = ar_mask;
  in.cross_attention_mask = xmask;
  torch::NoGradGuard no_grad;
  auto logits = m->forward(in).logits;
  const auto want = ref.at("logits");
  REQUIRE(logits.sizes() == want.sizes());
  const double diff = (logits - want).abs().max().item<double>();
  const double scale = want.abs().max().item<double>();
  INFO("max |ours - transformers| = " << diff << " (logits up to " << scale << ")");
  CHECK(diff < 1e-4 * std::max(1.0, scale));
  // The chat template renders a whole conversation (system, image and text, an assistant turn, a string turn)
  // as our chat format does.
  std::vector<text::Message> conversation{
      {"system", {text::ContentPart::from_text("Answer in four stages.")}},
      {"user", {text::ContentPart::image(), text::ContentPart::from_text(prompt)}},
      {"assistant", {text::ContentPart::from_text("<SUMMARY>I count.</SUMMARY>")}},
      {"user", {text::ContentPart::from_text("And the colours?")}}};
  const auto multi = chat.render(conversation, true).ids;
  const auto theirs_multi = ref.at("chat.multi");
  REQUIRE(theirs_multi.numel() == static_cast<int64_t>(multi.size()));
  for (size_t k = 0; k < multi.size(); ++k) CHECK(theirs_multi[static_cast<int64_t>(k)].item<int64_t>() == multi[k]);
  // transformers' tokenizer of the export gives our ids.
  const std::vector<std::string> texts{"Describe this image in two sentences.", " Test sentence   ", "ok\n",
                                       "<SUMMARY>a plan</SUMMARY> <CONCLUSION>B</CONCLUSION>", "<|image|>What is it?<|eot_id|>"};
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO(texts[i]);
    const auto theirs = ref.at("text." + std::to_string(i));
    const auto ours = tok->encode(texts[i], true);
    REQUIRE(theirs.numel() == static_cast<int64_t>(ours.size()));
    for (size_t k = 0; k < ours.size(); ++k) CHECK(theirs[static_cast<int64_t>(k)].item<int64_t>() == ours[k]);
  }
}

TEST_CASE("the CLI takes the exported directory: generate gives the same answer, train starts from it",
          "[oracle][export]") {
  const auto& e = exported();
  const auto scratch = test::fresh_dir("export_cli_" + std::to_string(::getpid()));
  auto gen = [&](const std::string& model, const std::string& answer_file) {  // the answer is all of stdout
    return test::run_command("(" + test::cli() + " generate --model " + test::shell_quote(model) + " --image " +
                             test::shell_quote(e.trained.image) +
                             " --prompt 'How many shapes are there?' --set decode.max_new_tokens=24 --set run.threads=1 > " +
                             test::shell_quote(scratch + "/" + answer_file) + ")");
  };
  require_ok(gen(e.trained.model, "a.txt"));
  require_ok(gen(e.fp32, "b.txt"));
  auto slurp = [&](const std::string& f) {
    std::ifstream in(scratch + "/" + f);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  CHECK(slurp("a.txt").size() > 1);
  CHECK(slurp("a.txt") == slurp("b.txt"));
  const auto run = test::fresh_dir("export_train_" + std::to_string(::getpid())) + "/run";
  auto t = test::run_command(test::cli() + test::demo_train_args(e.trained.demo, run) + " --set model.preset=" +
                             test::shell_quote(e.bf16) + " --set model.weights=" + test::shell_quote(e.bf16) +
                             " --set train.max_steps=2");
  require_ok(t);
  CHECK(stdfs::exists(run + "/final/config.json"));
  // A processor config asking for other image processing is refused, naming the setting.
  const auto odd = e.base + "/odd";
  stdfs::remove_all(odd);
  stdfs::copy(e.bf16, odd);
  auto p = read_json(odd + "/preprocessor_config.json");
  p["size"] = {{"height", 224}, {"width", 224}};
  std::ofstream(odd + "/preprocessor_config.json") << p.dump();
  auto bad = gen(odd, "c.txt");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Contains("preprocessor_config.json") && Contains("size"));
  // Nulls mean transformers' defaults, and the fast processor class does the same processing.
  p = read_json(e.bf16 + "/preprocessor_config.json");
  p["do_pad"] = nullptr;
  p["image_processor_type"] = "MllamaImageProcessorFast";
  std::ofstream(odd + "/preprocessor_config.json") << p.dump();
  require_ok(gen(odd, "d.txt"));
}

TEST_CASE("export refuses an existing directory and broken checkpoints; inspect finds broken exports",
          "[oracle][export]") {
  const auto& e = exported();
  const auto before = stdfs::last_write_time(e.bf16 + "/model.safetensors");
  auto again = export_cmd(e.trained.model, e.bf16, "--dtype bf16");
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.output, Contains("--overwrite"));
  CHECK(stdfs::last_write_time(e.bf16 + "/model.safetensors") == before);  // untouched
  // --overwrite replaces the whole directory: a sharded fp32 export becomes one bf16 file, no shard left over.
  require_ok(export_cmd(e.trained.model, e.base + "/over/", "--dtype fp32 --max-shard-size 300000"));  // trailing slash
  require_ok(export_cmd(e.trained.model, e.base + "/over", "--dtype bf16 --overwrite"));
  CHECK(read_json(e.base + "/over/config.json")["torch_dtype"] == "bfloat16");
  for (const auto& f : stdfs::directory_iterator(e.base + "/over"))
    CHECK(f.path().filename().string().rfind("model-0", 0) != 0);
  CHECK_FALSE(stdfs::exists(e.base + "/over/model.safetensors.index.json"));
  for (const auto& f : stdfs::directory_iterator(e.base)) CHECK(f.path().filename().string()[0] != '.');  // no temp dirs
  // --overwrite never replaces the checkpoint's own folder, nor a folder that is not an export.
  const auto run_dir = stdfs::path(e.trained.model).parent_path().string();
  auto ancestor = export_cmd(e.trained.model, run_dir, "--overwrite");
  CHECK(ancestor.exit_code == 2);
  CHECK_THAT(ancestor.output, Contains("contains the checkpoint"));
  CHECK(stdfs::exists(e.trained.model + "/model.safetensors"));
  const auto other = e.base + "/notes";
  stdfs::create_directories(other);
  std::ofstream(other + "/todo.txt") << "keep me";
  auto not_model = export_cmd(e.trained.model, other, "--overwrite");
  CHECK(not_model.exit_code == 2);
  CHECK(stdfs::exists(other + "/todo.txt"));

  auto good = test::run_command(test::cli() + " inspect " + test::shell_quote(e.fp32));
  INFO(good.output);
  CHECK(good.exit_code == 0);
  CHECK_THAT(good.output, Contains("every parameter present") && Contains("area       vision") && Contains("config     text:"));

  // A shard missing, a shard cut short, a config that does not fit the weights: each is found and named.
  auto broken = [&](const std::string& name) {
    const auto dir = e.base + "/" + name;
    stdfs::remove_all(dir);
    stdfs::copy(e.fp32, dir);
    return dir;
  };
  const auto no_shard = broken("no_shard");
  stdfs::remove(no_shard + "/model-00002-of-" + [&] {
    for (const auto& f : stdfs::directory_iterator(e.fp32)) {
      const auto n = f.path().filename().string();
      if (n.rfind("model-00001-of-", 0) == 0) return n.substr(15, 5);
    }
    return std::string("?????");
  }() + ".safetensors");
  auto r1 = test::run_command(test::cli() + " inspect " + test::shell_quote(no_shard));
  CHECK(r1.exit_code != 0);
  CHECK_THAT(r1.output, Contains("model-00002-of-"));
  const auto cut = broken("cut");
  for (const auto& f : stdfs::directory_iterator(cut))
    if (f.path().filename().string().rfind("model-00001-of-", 0) == 0) stdfs::resize_file(f.path(), stdfs::file_size(f.path()) / 2);
  auto r2 = test::run_command(test::cli() + " inspect " + test::shell_quote(cut));
  CHECK(r2.exit_code != 0);
  const auto resized = broken("resized");
  auto c = read_json(resized + "/config.json");
  c["text_config"]["intermediate_size"] = c["text_config"]["intermediate_size"].get<int64_t>() + 8;
  std::ofstream(resized + "/config.json") << c.dump(2);
  auto r3 = test::run_command(test::cli() + " inspect " + test::shell_quote(resized));
  CHECK(r3.exit_code != 0);
  CHECK_THAT(r3.output, Contains("PROBLEM") && Contains("mlp") && Contains("but the config implies"));
  // Exporting a broken checkpoint writes nothing.
  auto r4 = export_cmd(resized, e.base + "/from_broken", "");
  CHECK(r4.exit_code != 0);
  CHECK_THAT(r4.output, Contains("cannot be exported"));
  CHECK_FALSE(stdfs::exists(e.base + "/from_broken"));
}
