#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/text/chat_format.h"
#include "llavacot/text/regex_splitter.h"
#include "llavacot/text/sentencepiece_tokenizer.h"
#include "llavacot/util/error.h"
#include "support/support.h"

using namespace llavacot;
using text::TokenId;
using V = std::vector<TokenId>;
using Catch::Matchers::Contains;

namespace {

// A small byte-level BPE tokenizer.json: the 256 byte tokens (ids 0..255 in byte order), then merges.
std::string tiny_tokenizer_json(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& merges,
                                bool ignore_merges, const std::string& extra_vocab_json = "") {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[text::byte_to_unicode(static_cast<unsigned char>(b))] = b;
  nlohmann::json m = nlohmann::json::array();
  int next = 256;
  for (const auto& [l, r] : merges) {
    m.push_back(l + " " + r);
    if (!vocab.contains(l + r)) vocab[l + r] = next++;
  }
  nlohmann::json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", ignore_merges}};
  if (!extra_vocab_json.empty()) j["model"]["vocab"].update(nlohmann::json::parse(extra_vocab_json));
  j["added_tokens"] = nlohmann::json::array(
      {{{"id", next}, {"content", "<|eot_id|>"}, {"special", true}}});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", text::kLlama3Pattern}}}, {"behavior", "Isolated"}};
  std::string path = dir + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  return path;
}

}  // namespace

TEST_CASE("utf8_lossy replaces maximal invalid subparts like from_utf8_lossy", "[text]") {
  CHECK(text::utf8_lossy("plain") == "plain");
  CHECK(text::utf8_lossy("\xC3\xA9") == "\xC3\xA9");
  CHECK(text::utf8_lossy("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(text::utf8_lossy("\xE2\x82") == "\xEF\xBF\xBD");                 // truncated 3-byte: one U+FFFD
  CHECK(text::utf8_lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  CHECK(text::utf8_lossy("\xF0\x9F\x98") == "\xEF\xBF\xBD");
}

TEST_CASE("utf8_complete_prefix holds back an unfinished character", "[text]") {
  CHECK(text::utf8_complete_prefix("ab") == 2);
  CHECK(text::utf8_complete_prefix("a\xF0\x9F\x98") == 1);
  CHECK(text::utf8_complete_prefix("a\xF0\x9F\x98\x80") == 5);
  CHECK(text::utf8_complete_prefix("a\xFF") == 2);  // invalid is emitted (as U+FFFD), not held
}

TEST_CASE("the regex splitter keeps every byte and isolates matches", "[text]") {
  text::RegexSplitter s(text::kLlama3Pattern);
  std::vector<std::string_view> parts;
  s.split("Hello, world!! 123456 it's  \n\n x", parts);
  std::vector<std::string> got(parts.begin(), parts.end());
  CHECK(got == std::vector<std::string>{"Hello", ",", " world", "!!", " ", "123", "456", " it", "'s", "  \n\n",
                                        " x"});
  CHECK_THROWS_AS(text::RegexSplitter("(unclosed"), FormatError);
}

TEST_CASE("BPE merges by priority, leftmost first, with and without ignore_merges", "[text]") {
  std::string dir = test::fresh_dir("bpe_tiny");
  // "b c" outranks "a b": "abc" -> a + bc. With ignore_merges, a piece that is a token is taken whole.
  auto path = tiny_tokenizer_json(dir, {{"b", "c"}, {"a", "b"}, {"a", "bc"}}, false);
  auto tok = text::BpeTokenizer::from_tokenizer_json(path, -1);
  TokenId bc = tok.token_to_id("bc"), ab = tok.token_to_id("ab"), abc = tok.token_to_id("abc");
  CHECK(tok.encode("abc") == V{abc});                    // b+c, then a+bc
  CHECK(tok.encode("abab") == V{ab, ab});                // ties resolve leftmost
  CHECK(tok.encode("cab") == V{'c', ab});
  CHECK(tok.encode("<|eot_id|>x", true) == V{tok.token_to_id("<|eot_id|>"), 'x'});
  CHECK(tok.encode("<|eot_id|>", false).size() > 1);     // special text stays text unless allowed
  CHECK(tok.decode(tok.encode("abc<|eot_id|>", true)) == "abc<|eot_id|>");
  CHECK(tok.decode(tok.encode("abc<|eot_id|>", true), /*skip_special=*/true) == "abc");
  CHECK(tok.special_ids().eot == tok.token_to_id("<|eot_id|>"));
  CHECK(bc >= 256);
  CHECK_THROWS_AS(tok.token_bytes(99999), UsageError);
}

TEST_CASE("malformed tokenizer files are refused with the file and field", "[text][malformed]") {
  std::string dir = test::fresh_dir("bpe_bad");
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir + "/" + name) << body;
    return dir + "/" + name;
  };
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tokenizer_json(write("a.json", "{not json")), Contains("a.json"));
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tokenizer_json(write("b.json", R"({"model":{"type":"Unigram"}})")),
                    Contains("expected BPE"));
  std::string good = tiny_tokenizer_json(dir, {{"a", "b"}}, true);
  auto j = nlohmann::json::parse(std::ifstream(good));
  j["model"]["merges"].push_back("a zz");
  std::ofstream(dir + "/c.json") << j.dump();
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tokenizer_json(dir + "/c.json", -1), Contains("not in the vocab"));
  j = nlohmann::json::parse(std::ifstream(good));
  j["model"]["vocab"].erase(text::byte_to_unicode('q'));
  std::ofstream(dir + "/d.json") << j.dump();
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tokenizer_json(dir + "/d.json", -1), Contains("no token has id"));
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tiktoken(write("e.model", "YQ== 0\nnot-base64! 1\n"), {}),
                    Contains("e.model:2"));
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tiktoken(write("f.model", "YQ== x\n"), {}), Contains("rank"));
  CHECK_THROWS_WITH(text::BpeTokenizer::from_tokenizer_json(good, 5000), Contains("image_token_index"));
  CHECK_THROWS_AS(text::load_tokenizer(dir + "/missing.json"), IoError);
}

TEST_CASE("a SentencePiece model trained with spm_train loads and round-trips", "[text][sentencepiece]") {
  std::string dir = test::fresh_dir("spm");
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 200; ++i)
      corpus << "the circle is red and the square is blue " << i << "\nhow many shapes are there\n";
  }
  auto r = test::run_command("spm_train --input=" + dir + "/corpus.txt --model_prefix=" + dir +
                             "/m --vocab_size=60 --model_type=bpe --user_defined_symbols='<|image|>,<|eot_id|>'"
                             " --minloglevel=2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto tok = text::load_tokenizer(dir + "/m.model");
  std::string s = "the red circle <|image|> is there";
  auto ids = tok->encode(s, true);
  CHECK(tok->decode(ids) == s);
  CHECK(std::count(ids.begin(), ids.end(), tok->special_ids().image) == 1);
  CHECK(tok->special_ids().eot == tok->token_to_id("<|eot_id|>"));
  CHECK(tok->decode(ids, true).find("<|image|>") == std::string::npos);
}

// ---------------------------------------------------------------------------------------------------
// With the real Llama 3 tokenizer

TEST_CASE("the incremental decoder emits complete UTF-8 only", "[text]") {
  std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  auto tok = text::BpeTokenizer::from_tokenizer_json(json);
  std::string s = "héllo 👨‍👩‍👧‍👦 世界 ok<|eot_id|>";
  auto ids = tok.encode(s, true);
  text::IncrementalDecoder dec(tok, /*skip_special=*/true);
  std::string joined;
  int split_chars = 0;
  for (TokenId id : ids) {
    std::string piece = dec.push(id);
    CHECK(text::utf8_lossy(piece) == piece);  // never half a character
    if (piece.empty() && !tok.is_special(id)) ++split_chars;
    joined += piece;
  }
  joined += dec.flush();
  CHECK(joined == "héllo 👨‍👩‍👧‍👦 世界 ok");
  CHECK(split_chars > 0);  // the emoji really were split across tokens
}

TEST_CASE("chat format: exact ids and masks", "[text][chat]") {
  std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  auto tok = text::BpeTokenizer::from_tokenizer_json(json);
  text::ChatFormat chat(tok);
  using text::ContentPart;
  const TokenId M = text::kIgnoreLabel;

  SECTION("single image, generation prompt (spec 6.2)") {
    auto r = chat.render({{"user", {ContentPart::image(), ContentPart::from_text("Describe this image in two sentences")}}},
                         true);
    CHECK(r.ids == V{128000, 128006, 882, 128007, 271, 128256, 75885, 420, 2217, 304, 1403, 23719, 128009, 128006,
                     78191, 128007, 271});
    CHECK(r.labels == V(r.ids.size(), M));
    CHECK(r.n_images == 1);
  }
  SECTION("text only, one trained assistant turn") {
    auto r = chat.render({{"user", {ContentPart::from_text("ok")}}, {"assistant", {ContentPart::from_text("This is a test sentence.")}}});
    CHECK(r.ids == V{128000, 128006, 882, 128007, 271, 564, 128009, 128006, 78191, 128007, 271, 2028, 374, 264, 1296,
                     11914, 13, 128009});
    CHECK(r.labels == V{M, M, M, M, M, M, M, M, M, M, M, 2028, 374, 264, 1296, 11914, 13, 128009});
    CHECK(r.n_images == 0);
  }
  SECTION("system prompt and two assistant turns, every assistant turn trained") {
    auto r = chat.render({{"system", {ContentPart::from_text("system")}},
                          {"user", {ContentPart::image(), ContentPart::from_text("user")}},
                          {"assistant", {ContentPart::from_text("ok\n")}},
                          {"user", {ContentPart::from_text("assistant")}},
                          {"assistant", {ContentPart::from_text("system")}}});
    V ids{128000, 128006, 9125, 128007, 271, 9125,  128009, 128006, 882, 128007, 271, 128256, 882, 128009,
          128006, 78191, 128007, 271, 564, 198,    128009, 128006, 882, 128007, 271, 78191,  128009,
          128006, 78191, 128007, 271, 9125, 128009};
    CHECK(r.ids == ids);
    V trained(ids.size(), M);
    for (size_t i : {18, 19, 20, 31, 32}) trained[i] = ids[i];
    CHECK(r.labels == trained);
  }
  SECTION("a token straddling the header's blank line and the content is trained") {
    // "\n\n\n" is one token: it begins in the header and ends in the content.
    auto r = chat.render({{"user", {ContentPart::from_text("q")}}, {"assistant", {ContentPart::from_text("\nA")}}});
    TokenId nnn = tok.encode("\n\n\n")[0];
    REQUIRE(tok.encode("\n\n\n").size() == 1);
    CHECK(r.ids[r.ids.size() - 3] == nnn);
    CHECK(r.labels[r.labels.size() - 3] == nnn);
  }
  CHECK_THROWS_AS(chat.render({{"robot", {}}}), UsageError);
  CHECK_THROWS_AS(chat.render({}), UsageError);
}
