// The LLaVA-CoT-100k reader: the byte-offset index, record validation and every kind of bad record.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "llavacot/data/batch.h"
#include "llavacot/data/llava_cot.h"
#include "llavacot/data/loader.h"
#include "llavacot/data/demo.h"
#include "llavacot/data/pipeline.h"
#include "llavacot/text/tokenizer.h"
#include "support/support.h"

using namespace llavacot;
using data::BadReason;

namespace {

const char* kAnswer =
    "<SUMMARY> I will count the red circles. </SUMMARY>\n\n<CAPTION> Three red circles and a blue square. "
    "</CAPTION>\n\n<REASONING> There are 3 red circles. </REASONING>\n\n<CONCLUSION> 3 </CONCLUSION>";

std::string record(const std::string& id, const std::string& image, const std::vector<std::pair<std::string, std::string>>& turns) {
  nlohmann::json j = {{"id", id}, {"conversations", nlohmann::json::array()}};
  if (!image.empty()) j["image"] = image;
  for (const auto& [from, value] : turns) j["conversations"].push_back({{"from", from}, {"value", value}});
  return j.dump();
}

struct Fixture {
  std::string dir = test::fresh_dir("data_reader");
  std::string jsonl = dir + "/train.jsonl";
  Fixture() {
    std::filesystem::create_directories(dir + "/images/sqa/train/1");
    std::ofstream(dir + "/images/sqa/train/1/image.png") << "png bytes are not checked here";
  }
  data::LlavaCotReader write(const std::vector<std::string>& lines, bool allow_text_only = true) {
    std::ofstream f(jsonl, std::ios::trunc);
    for (const auto& l : lines) f << l << "\n";
    f.close();
    data::ReaderOptions o;
    o.image_root = dir + "/images";
    o.allow_text_only = allow_text_only;
    return data::LlavaCotReader(jsonl, o);
  }
};

BadReason reason_of(const data::LlavaCotReader& r, size_t i) {
  try {
    r.get(i);
  } catch (const data::BadRecord& e) {
    return e.reason();
  }
  FAIL("record " << i << " was accepted");
  return BadReason::kMalformedJson;
}

}  // namespace

TEST_CASE("records as released read back with their turns, placeholders removed and images resolved", "[data]") {
  Fixture fx;
  nlohmann::json extra = nlohmann::json::parse(record("a1", "sqa/train/1/image.png", {{"human", "<image>\nHow many red circles?"}, {"gpt", kAnswer}}));
  extra["hints"] = "tolerated";
  auto reader = fx.write({extra.dump(), "",
                          record("a2", "sqa/train/1/image.png",
                                 {{"human", "What is shown? <image>"}, {"gpt", kAnswer}, {"human", "And the colour?"}, {"gpt", kAnswer}}),
                          record("t3", "", {{"human", "What is 2 + 2?"}, {"gpt", kAnswer}})});
  REQUIRE(reader.size() == 3);  // the blank line is not a record
  auto r = reader.get(0);
  CHECK(r.id == "a1");
  CHECK(r.line == 1);
  CHECK(r.turns.size() == 2);
  CHECK(r.turns[0].value == "How many red circles?");
  CHECK(r.turns[1].value == kAnswer);
  CHECK(r.image_path == fx.dir + "/images/sqa/train/1/image.png");
  auto multi = reader.get(1);
  CHECK(multi.line == 3);
  CHECK(multi.turns.size() == 4);
  CHECK(multi.turns[0].value == "What is shown?");
  auto text = reader.get(2);
  CHECK_FALSE(text.has_image());
  CHECK(text.line == 4);
  auto strict = fx.write({record("t3", "", {{"human", "What is 2 + 2?"}, {"gpt", kAnswer}})}, /*allow_text_only=*/false);
  CHECK(reason_of(strict, 0) == BadReason::kTextOnly);
}

TEST_CASE("every kind of bad record is refused with its reason, line and id", "[data][malformed]") {
  Fixture fx;
  const std::string img = "sqa/train/1/image.png";
  auto reader = fx.write({
      "{\"id\": \"x\", \"conversations\": [",                                         // 1 malformed JSON
      "[1, 2]",                                                                       // 2 not an object
      "{\"conversations\": []}",                                                      // 3 no id
      "{\"id\": \"n\"}",                                                              // 4 no conversations
      record("o", img, {{"gpt", kAnswer}, {"human", "q"}}),                          // 5 wrong order
      record("s", img, {{"human", "q"}, {"gpt", kAnswer}, {"human", "again"}}),      // 6 ends with human
      record("e", img, {{"human", "<image>\n"}, {"gpt", kAnswer}}),                  // 7 empty after stripping
      record("m", img, {{"human", "q"}, {"gpt", "<SUMMARY> s </SUMMARY> <CONCLUSION> c </CONCLUSION>"}}),  // 8
      record("r", img, {{"human", "q"}, {"gpt", "<CAPTION> c </CAPTION><SUMMARY> s </SUMMARY><REASONING> r "
                                                "</REASONING><CONCLUSION> c </CONCLUSION>"}}),           // 9 order
      record("u", img, {{"human", "q"}, {"gpt", "<SUMMARY> s <CAPTION> c </CAPTION> <REASONING> r </REASONING> "
                                                "<CONCLUSION> c </CONCLUSION>"}}),                       // 10 unclosed
      record("p", "/etc/passwd", {{"human", "q"}, {"gpt", kAnswer}}),                // 11 absolute
      record("d", "../../secret.png", {{"human", "q"}, {"gpt", kAnswer}}),          // 12 escapes
      record("g", "sqa/missing.png", {{"human", "q"}, {"gpt", kAnswer}}),           // 13 missing file
      record("f", img, {{"human", "q"}, {"bot", kAnswer}}),                          // 14 unknown speaker
      record("t", img, {{"human", "q"}, {"gpt", std::string(kAnswer) + " trailing words"}}),  // 15
  });
  const std::vector<BadReason> expected = {
      BadReason::kMalformedJson, BadReason::kMalformedJson, BadReason::kMissingField, BadReason::kMissingField,
      BadReason::kBadTurns,      BadReason::kBadTurns,      BadReason::kEmptyTurn,    BadReason::kStages,
      BadReason::kStages,        BadReason::kStages,        BadReason::kImagePath,    BadReason::kImagePath,
      BadReason::kImageMissing,  BadReason::kBadTurns,      BadReason::kStages};
  REQUIRE(reader.size() == expected.size());
  data::BadRecordLog log(fx.dir + "/bad_records.jsonl");
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("line " << i + 1);
    CHECK(reason_of(reader, i) == expected[i]);
    try {
      reader.get(i);
    } catch (const data::BadRecord& e) {
      CHECK(e.line() == static_cast<int64_t>(i) + 1);
      CHECK(std::string(e.what()).find(fx.jsonl + ":" + std::to_string(i + 1)) != std::string::npos);
      log.add(e);
    }
  }
  CHECK(log.total() == 15);
  CHECK(log.counts().at("stages") == 4);
  CHECK(log.summary().rfind("15 skipped:", 0) == 0);
  std::ifstream in(fx.dir + "/bad_records.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    CHECK(j["line"].get<int64_t>() == n + 1);
    CHECK(j["reason"].get<std::string>() == data::reason_name(expected[static_cast<size_t>(n)]));
    ++n;
  }
  CHECK(n == 15);
}

TEST_CASE("the stage check accepts the released layout and names what is wrong", "[data]") {
  CHECK(data::check_stages(kAnswer).empty());
  CHECK(data::check_stages("<SUMMARY>a</SUMMARY><CAPTION>b</CAPTION><REASONING>c</REASONING><CONCLUSION>d</CONCLUSION>").empty());
  CHECK(data::check_stages("").find("<SUMMARY> is missing") != std::string::npos);
  CHECK(data::check_stages("<SUMMARY> </SUMMARY><CAPTION>b</CAPTION><REASONING>c</REASONING><CONCLUSION>d</CONCLUSION>") ==
        "<SUMMARY> is empty");
  CHECK(data::check_stages("x <SUMMARY>a</SUMMARY><CAPTION>b</CAPTION><REASONING>c</REASONING><CONCLUSION>d</CONCLUSION>") ==
        "text before <SUMMARY>");
  CHECK(data::strip_image_placeholders("<image>\n<image> Q <image>\n") == "Q");
  CHECK(data::strip_image_placeholders("A <image> B") == "A <image> B");
}

TEST_CASE("the index finds lines by byte offset, CRLF and a missing final newline included", "[data]") {
  auto dir = test::fresh_dir("data_index");
  {
    std::ofstream f(dir + "/x.jsonl", std::ios::binary);
    f << "{\"a\": 1}\r\n\r\n   \n{\"b\": 2}\n{\"c\": 3}";
  }
  auto idx = data::JsonlIndex::build(dir + "/x.jsonl");
  REQUIRE(idx.size() == 3);
  CHECK(idx.text(0) == "{\"a\": 1}");
  CHECK(idx.line_number(1) == 4);
  CHECK(idx.text(2) == "{\"c\": 3}");
  CHECK_THROWS_AS(data::JsonlIndex::build(dir + "/missing.jsonl"), IoError);
  std::ofstream(dir + "/empty.jsonl").close();
  CHECK(data::JsonlIndex::build(dir + "/empty.jsonl").size() == 0);
}

TEST_CASE("preprocessing renders the chat with the LLaVA-CoT mask and collation pads to a model batch", "[data]") {
  const std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  auto tok = text::load_tokenizer(json);
  const auto& sp = tok->special_ids();
  Fixture fx;
  {
    cv::Mat img(40, 90, CV_8UC3, cv::Scalar(20, 200, 30));
    cv::imwrite(fx.dir + "/images/sqa/train/1/image.png", img);
    std::ofstream(fx.dir + "/images/broken.png") << "not a png";
  }
  auto reader = fx.write({record("a", "sqa/train/1/image.png", {{"human", "<image>\nHow many?"}, {"gpt", kAnswer}}),
                          record("b", "", {{"human", "Hi"}, {"gpt", kAnswer}, {"human", "More?"}, {"gpt", kAnswer}}),
                          record("c", "broken.png", {{"human", "Q"}, {"gpt", kAnswer}})});
  vision::ImageProcessorConfig vc;
  vc.tile_size = 28;
  vision::ImageProcessor images(vc);
  data::Preprocessor pre(*tok, images, {});
  auto a = pre(reader.get(0), 0), b = pre(reader.get(1), 1);
  CHECK(a.ids.front() == sp.bos);
  CHECK(std::count(a.ids.begin(), a.ids.end(), sp.image) == 1);
  CHECK(a.images.size() == 1);
  CHECK(a.images[0].n_tiles() == 3);  // 40 x 90 -> one row of three tiles
  // Trained: the assistant text and its <|eot_id|>, nothing of the prompt.
  auto trained = std::vector<text::TokenId>();
  for (size_t i = 0; i < a.ids.size(); ++i)
    if (a.labels[i] != text::kIgnoreLabel) trained.push_back(a.ids[i]);
  CHECK(trained.back() == sp.eot);
  trained.pop_back();
  CHECK(tok->decode(trained) == kAnswer);
  CHECK(b.images.empty());
  CHECK(std::count(b.ids.begin(), b.ids.end(), sp.eot) == 4);
  try {
    pre(reader.get(2), 2);
    FAIL("a corrupt image was accepted");
  } catch (const data::BadRecord& e) {
    CHECK(e.reason() == BadReason::kImageCorrupt);
  }
  // Length policies.
  data::Preprocessor drop(*tok, images, {20, "drop"});
  CHECK_THROWS_AS(drop(reader.get(0), 0), data::BadRecord);
  data::Preprocessor cut(*tok, images, {static_cast<int64_t>(a.ids.size()) - 5, "truncate_response"});
  auto shorter = cut(reader.get(0), 0);
  CHECK(shorter.truncated);
  CHECK(shorter.ids.size() == a.ids.size() - 5);
  data::Preprocessor too_short(*tok, images, {8, "truncate_response"});
  CHECK_THROWS_AS(too_short(reader.get(0), 0), data::BadRecord);

  const text::TokenId pad = sp.pad >= 0 ? sp.pad : 128004;
  auto batch = data::collate({a, b}, pad, sp.image, images);
  const auto s = static_cast<int64_t>(std::max(a.ids.size(), b.ids.size()));
  REQUIRE(batch.input_ids.sizes() == torch::IntArrayRef({2, s}));
  CHECK(batch.attention_mask.sum().item<int64_t>() == static_cast<int64_t>(a.ids.size() + b.ids.size()));
  CHECK(batch.real_tokens == static_cast<int64_t>(a.ids.size() + b.ids.size()));
  const auto na = static_cast<int64_t>(a.ids.size());
  if (na < s) {
    CHECK(batch.input_ids[0][na].item<int64_t>() == pad);
    CHECK(batch.labels[0][na].item<int64_t>() == text::kIgnoreLabel);
  }
  REQUIRE(batch.pixel_values.defined());
  CHECK(batch.pixel_values.sizes() == torch::IntArrayRef({2, 1, 4, 3, 28, 28}));
  CHECK(batch.aspect_ratio_ids[1][0].item<int64_t>() == 0);  // the text-only row has no image
  CHECK(batch.cross_attention_mask.sizes() == torch::IntArrayRef({2, s, 1, 4}));
  const auto image_pos = std::find(a.ids.begin(), a.ids.end(), sp.image) - a.ids.begin();
  CHECK(batch.cross_attention_mask[0][image_pos].sum().item<int64_t>() == 3);  // visible from its token on 3 tiles
  CHECK(batch.cross_attention_mask[0].narrow(0, 0, image_pos).sum().item<int64_t>() == 0);
  CHECK(batch.cross_attention_mask[1].sum().item<int64_t>() == 0);
  auto in = batch.inputs();
  CHECK(in.labels.equal(batch.labels));
  auto text_only = data::collate({b}, pad, sp.image, images);
  CHECK_FALSE(text_only.pixel_values.defined());

  // The batch drives the model: the tiny architecture with the real vocabulary.
  auto cfg = model::load_preset(test::source_path("configs/models/tiny.json"));
  cfg.text.vocab_size = 128256;
  cfg.image_token_index = sp.image;
  cfg.text.pad_token_id = pad;
  cfg.text.bos_token_id = sp.bos;
  model::MllamaForConditionalGeneration m(cfg);
  model::init_weights(m, 1);
  auto out = m->forward(batch.inputs());
  CHECK(out.logits.sizes() == torch::IntArrayRef({2, s, 128256}));
  CHECK(std::isfinite(out.loss.item<double>()));
  CHECK(out.loss.item<double>() == Approx(std::log(128256.0)).epsilon(0.05));  // an untrained model is near uniform
}

TEST_CASE("epoch plans shard disjointly and completely with equal steps, deterministic in (seed, epoch)", "[data][loader]") {
  data::LoaderOptions o;
  o.batch_size = 2;
  o.seed = 7;
  o.world = 3;
  std::set<size_t> seen;
  size_t steps = 0;
  for (int64_t rank = 0; rank < 3; ++rank) {
    o.rank = rank;
    auto plan = data::epoch_plan(23, o, 0);
    if (rank == 0) steps = plan.size();
    CHECK(plan.size() == steps);  // 7 records per rank -> 4 steps everywhere
    for (const auto& batch : plan)
      for (size_t i : batch) CHECK(seen.insert(i).second);  // no record on two ranks
    CHECK(plan == data::epoch_plan(23, o, 0));
    CHECK(plan != data::epoch_plan(23, o, 1));
  }
  CHECK(steps == 4);
  CHECK(seen.size() == 21);  // 23 cut to a multiple of the world size
  o.world = 1;
  o.rank = 0;
  o.shuffle = false;
  auto plain = data::epoch_plan(5, o, 3);
  CHECK(plain == std::vector<std::vector<size_t>>{{0, 1}, {2, 3}, {4}});
  CHECK_THROWS_AS(data::epoch_plan(2, [] { data::LoaderOptions x; x.world = 3; x.rank = 1; return x; }(), 0), UsageError);
  CHECK(data::LoaderPosition::from_json(data::LoaderPosition{2, 5}.to_json()) == data::LoaderPosition{2, 5});
  CHECK_THROWS_AS(data::LoaderPosition::from_json("{\"epoch\": 1}"), FormatError);
}

TEST_CASE("the loader skips bad records, prefetches in threads and resumes to the same batches", "[data][loader]") {
  const std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  auto tok = text::load_tokenizer(json);
  Fixture fx;
  std::vector<std::string> lines;
  for (int i = 0; i < 19; ++i)
    lines.push_back(i % 6 == 5 ? record("bad" + std::to_string(i), "", {{"human", "q"}, {"gpt", "no stages"}})
                               : record("r" + std::to_string(i), "", {{"human", "question " + std::to_string(i)}, {"gpt", kAnswer}}));
  auto reader = fx.write(lines);
  vision::ImageProcessor images({});
  data::Preprocessor pre(*tok, images, {});
  auto ids_of = [&](int64_t workers, int64_t stop_after, data::LoaderPosition start, data::LoaderPosition* end,
                    data::BadRecordLog* log) {
    data::LoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    o.seed = 3;
    o.pad_id = 128004;
    o.image_token_id = tok->special_ids().image;
    data::DataLoader loader(reader, pre, images, o, log);
    loader.seek(start);
    std::vector<std::string> out;
    for (int64_t taken = 0; taken < stop_after;) {
      auto batch = loader.next();
      if (!batch) {
        out.push_back("|");  // epoch boundary
        continue;
      }
      ++taken;
      for (const auto& id : batch->ids) out.push_back(id);
      out.push_back(";");
    }
    if (end) *end = loader.position();
    return out;
  };
  data::BadRecordLog log(fx.dir + "/bad_records.jsonl");
  auto epoch = ids_of(0, 5, {}, nullptr, &log);  // one epoch: 19 records in 5 steps
  CHECK(log.total() == 3);                       // lines 6, 12 and 18 are bad, skipped, the epoch goes on
  CHECK(log.counts().at("stages") == 3);
  CHECK(std::count(epoch.begin(), epoch.end(), ";") == 5);
  CHECK(epoch.size() == 16 + 5);  // the 16 good records, each once
  auto straight = ids_of(0, 8, {}, nullptr, nullptr);  // into the second epoch
  CHECK(std::count(straight.begin(), straight.end(), "|") == 1);
  CHECK(ids_of(2, 8, {}, nullptr, nullptr) == straight);  // threads change nothing
  data::LoaderPosition mid;
  auto first = ids_of(2, 6, {}, &mid, nullptr);
  auto rest = ids_of(2, 2, data::LoaderPosition::from_json(mid.to_json()), nullptr, nullptr);
  first.insert(first.end(), rest.begin(), rest.end());
  CHECK(first == straight);
}

TEST_CASE("length grouping keeps plans complete and disjoint and cuts the length spread within batches", "[data][loader]") {
  std::vector<uint32_t> lengths(1003);
  std::mt19937 gen(1);
  for (auto& l : lengths) l = 50 + gen() % 2000;
  data::LoaderOptions o;
  o.batch_size = 8;
  o.world = 2;
  o.seed = 5;
  o.group_batches = 10;
  auto spread = [&](bool grouped) {
    o.group_by_length = grouped;
    std::set<size_t> seen;
    std::vector<std::vector<std::vector<size_t>>> plans;
    for (int64_t rank = 0; rank < 2; ++rank) {
      o.rank = rank;
      plans.push_back(data::epoch_plan(lengths.size(), o, 0, &lengths));
      CHECK(plans.back() == data::epoch_plan(lengths.size(), o, 0, &lengths));
      CHECK(plans.back() != data::epoch_plan(lengths.size(), o, 1, &lengths));
      for (const auto& b : plans.back())
        for (size_t i : b) CHECK(seen.insert(i).second);
    }
    CHECK(seen.size() == 1002);  // cut to a multiple of the world size
    REQUIRE(plans[0].size() == plans[1].size());
    CHECK(plans[0].size() == 63);  // 501 per rank in batches of 8
    CHECK(plans[0].back().size() == 5);
    double total = 0, step_gap = 0;
    for (size_t s = 0; s < plans[0].size(); ++s) {
      uint32_t lo = UINT32_MAX, hi = 0, top[2] = {0, 0};
      for (size_t r = 0; r < 2; ++r)
        for (size_t i : plans[r][s]) {
          lo = std::min(lo, lengths[i]);
          hi = std::max(hi, lengths[i]);
          top[r] = std::max(top[r], lengths[i]);
        }
      total += hi - lo;
      step_gap += std::abs(static_cast<double>(top[0]) - top[1]);
    }
    return std::make_pair(total / static_cast<double>(plans[0].size()), step_gap / static_cast<double>(plans[0].size()));
  };
  const auto [plain, plain_gap] = spread(false);
  const auto [grouped, grouped_gap] = spread(true);
  INFO(plain << " vs " << grouped << "; gaps " << plain_gap << " vs " << grouped_gap);
  CHECK(grouped < plain / 5);          // records of one batch have similar lengths
  CHECK(grouped_gap < plain_gap / 5);  // and so do the ranks' batches of one step
  o.rank = 0;
  CHECK_THROWS_AS(data::epoch_plan(lengths.size(), o, 0, nullptr), UsageError);
}

TEST_CASE("the data config builds a loader: tile budget, bad-record file, fail mode and length grouping", "[data][loader]") {
  const std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  auto tok = text::load_tokenizer(json);
  const std::string dir = test::fresh_dir("data_pipeline");
  const std::string demo = test::make_demo(dir, 60);
  std::ofstream(demo + "/train.jsonl", std::ios::app) << record("broken", "shapes/000001.png", {{"human", "Q"}, {"gpt", "no stages"}}) << "\n";

  DataConfig c;
  c.train_file = demo + "/train.jsonl";
  c.image_root = demo + "/images";
  c.num_workers = 1;
  vision::ImageProcessorConfig model_tiles;
  model_tiles.tile_size = 28;
  model_tiles.max_tiles = 4;
  data::TrainingDataSettings s;
  s.batch_size = 4;
  s.pad_id = 128004;
  s.run_dir = dir + "/run";
  auto epoch = [&](const DataConfig& cfg, int64_t* padding) {
    data::TrainingData td(cfg, *tok, model_tiles, s);
    int64_t samples = 0, steps = 0;
    *padding = 0;
    while (auto b = td.loader().next()) {
      ++steps;
      if (b->size() == 0) continue;  // a batch whose only record was the broken one still counts as a step
      samples += b->size();
      *padding += b->input_ids.numel() - b->real_tokens;
      // 112 px images on 28 px tiles: a 2 x 2 canvas, or 1 x 1 within a budget of one tile; the tensors keep
      // the model's four tile slots either way.
      CHECK(b->pixel_values.size(2) == 4);
      const int64_t budget = cfg.max_image_tiles == 0 ? 4 : std::min<int64_t>(cfg.max_image_tiles, 4);  // 0: the model's
      CHECK(b->aspect_ratio_mask.sum(2).max().item<int64_t>() == budget);
      CHECK(b->aspect_ratio_mask.sum(2).min().item<int64_t>() == budget);
    }
    CHECK(steps == td.loader().steps_per_epoch());
    CHECK(samples == 60);  // 61 records, the broken one skipped
    CHECK(td.bad_records().total() == 1);
    return steps;
  };
  int64_t plain = 0, grouped = 0;
  CHECK(c.max_image_tiles == 0);  // the default: the model's four tiles
  CHECK(epoch(c, &plain) == 16);
  c.group_by_length = true;
  c.max_image_tiles = 1;
  epoch(c, &grouped);
  INFO(plain << " padding tokens vs " << grouped << " grouped");
  CHECK(grouped < plain / 2);
  // Both runs appended their refusal to the run directory's bad_records.jsonl.
  std::ifstream log(s.run_dir + "/bad_records.jsonl");
  int lines = 0;
  for (std::string l; std::getline(log, l); ++lines) CHECK(nlohmann::json::parse(l).at("reason") == "stages");
  CHECK(lines == 2);

  c.on_bad_record = "fail";
  c.group_by_length = false;
  {
    data::TrainingData td(c, *tok, model_tiles, s);
    CHECK_THROWS_AS([&] { while (td.loader().next()) {} }(), data::BadRecord);
  }
  c.max_image_tiles = 8;
  CHECK_THROWS_AS(data::TrainingData(c, *tok, model_tiles, s), ConfigError);
  c.max_image_tiles = -1;
  CHECK_THROWS_AS(data::TrainingData(c, *tok, model_tiles, s), ConfigError);
  c.max_image_tiles = 4;
  c.train_file.clear();
  CHECK_THROWS_AS(data::TrainingData(c, *tok, model_tiles, s), ConfigError);
}
