// The LLaVA-CoT-100k reader: the byte-offset index, record validation and every kind of bad record.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/data/llava_cot.h"
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
      CHECK(std::string(e.what()).find("line " + std::to_string(i + 1)) != std::string::npos);
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
