// Our Llama 3 tokenizer against the Hugging Face `tokenizers` package on the real Llama 3.1 tokenizer.json,
// over a generated corpus of 2,200 strings (tests/oracle/tokenizer_oracle.py).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/text/chat_format.h"
#include "support/support.h"

using namespace llavacot;
using text::TokenId;

namespace {

std::string oracle_cmd(const std::string& args) {
  return test::python_script_command("tests/oracle/tokenizer_oracle.py", args);
}

struct Case {
  std::string text;
  std::vector<TokenId> special, plain;
};

// The corpus with reference ids, generated once per build tree.
const std::vector<Case>& corpus(const std::string& json) {
  static std::vector<Case> cases;
  if (!cases.empty()) return cases;
  std::string path = test::fresh_dir("tokenizer_corpus") + "/corpus.jsonl";
  auto r = test::run_command(oracle_cmd("corpus " + test::shell_quote(json) + " " + test::shell_quote(path)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    cases.push_back({j["text"], j["special"], j["plain"]});
  }
  return cases;
}

const text::BpeTokenizer& ours(const std::string& json) {
  static const text::BpeTokenizer tok = text::BpeTokenizer::from_tokenizer_json(json);
  return tok;
}

std::string show(const std::vector<TokenId>& ids) { return nlohmann::json(ids).dump(); }

}  // namespace

TEST_CASE("ids equal the tokenizers package on the whole corpus, both special modes", "[oracle][text]") {
  std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found (set LLAVACOT_LLAMA3_TOKENIZER_JSON)");
    return;
  }
  const auto& cases = corpus(json);
  REQUIRE(cases.size() >= 2000);
  const auto& tok = ours(json);
  int bad_special = 0, bad_plain = 0, bad_roundtrip = 0;
  for (const auto& c : cases) {
    auto s = tok.encode(c.text, true);
    auto p = tok.encode(c.text, false);
    if (s != c.special && ++bad_special <= 5)
      UNSCOPED_INFO("special: " << nlohmann::json(c.text).dump() << "\n ours " << show(s) << "\n ref  " << show(c.special));
    if (p != c.plain && ++bad_plain <= 5)
      UNSCOPED_INFO("plain: " << nlohmann::json(c.text).dump() << "\n ours " << show(p) << "\n ref  " << show(c.plain));
    if ((tok.decode(p) != c.text || tok.decode(s) != c.text) && ++bad_roundtrip <= 5)
      UNSCOPED_INFO("round trip: " << nlohmann::json(c.text).dump());
  }
  CHECK(bad_special == 0);
  CHECK(bad_plain == 0);
  CHECK(bad_roundtrip == 0);
}

TEST_CASE("reference ids from the mllama spec", "[oracle][text]") {
  std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  const auto& tok = ours(json);
  using V = std::vector<TokenId>;
  CHECK(tok.encode("This is a test sentence.") == V{2028, 374, 264, 1296, 11914, 13});
  CHECK(tok.encode("Describe this image in two sentences") == V{75885, 420, 2217, 304, 1403, 23719});
  CHECK(tok.encode(" Test sentence   ") == V{3475, 11914, 262});
  CHECK(tok.encode("ok\n") == V{564, 198});
  CHECK(tok.encode("system") == V{9125});
  CHECK(tok.encode("user") == V{882});
  CHECK(tok.encode("assistant") == V{78191});
  CHECK(tok.encode("\n\n") == V{271});
  CHECK(tok.encode_for_model("If I had to write a haiku") == V{128000, 2746, 358, 1047, 311, 3350, 264, 6520, 39342});
  CHECK(tok.encode("<|image|>If I had to write a haiku for this one", true) ==
        V{128256, 2746, 358, 1047, 311, 3350, 264, 6520, 39342, 369, 420, 832});
  CHECK(tok.vocab_size() == 128257);
  CHECK(tok.base_vocab_size() == 128000);
  CHECK(tok.special_ids().bos == 128000);
  CHECK(tok.special_ids().image == 128256);
  CHECK(tok.adds_bos());
  // The shared test file names its reserved tokens as Llama 3.0 did (128004 is <|reserved_special_token_2|>,
  // not <|finetune_right_pad_id|>); the table we use for tiktoken files follows Llama 3.1/3.2 (mllama spec
  // §6.1). The ids they share must agree.
  auto table = text::llama3_special_tokens();
  for (const auto& s : table)
    if (s.text.find("reserved") == std::string::npos && tok.token_to_id(s.text) >= 0)
      CHECK(tok.token_to_id(s.text) == s.id);
  CHECK(table.size() == 257);
  CHECK(tok.token_to_id("<|eot_id|>") == 128009);
  CHECK(tok.token_to_id("<|start_header_id|>") == 128006);
  CHECK(tok.special_ids().eos == (tok.token_to_id("<|eom_id|>") >= 0 ? V{128001, 128008, 128009} : V{128001, 128009}));
}

TEST_CASE("the tiktoken rank file loader gives the same ids as tokenizer.json", "[oracle][text]") {
  std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  std::string model = test::fresh_dir("tiktoken_convert") + "/tokenizer.model";
  auto r = test::run_command(oracle_cmd("tiktoken " + test::shell_quote(json) + " " + test::shell_quote(model)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto& hf = ours(json);
  // The same special tokens as the json file (see the naming note above).
  std::vector<text::SpecialToken> specials;
  for (TokenId id = static_cast<TokenId>(hf.base_vocab_size()); id < hf.vocab_size(); ++id)
    specials.push_back({hf.token_bytes(id), id, true});
  auto tt = text::BpeTokenizer::from_tiktoken(model, specials);
  CHECK(tt.vocab_size() == hf.vocab_size());
  int bad = 0;
  for (const auto& c : corpus(json)) {
    for (bool special : {true, false})
      if (tt.encode(c.text, special) != hf.encode(c.text, special) && ++bad <= 5)
        UNSCOPED_INFO("differs: " << nlohmann::json(c.text).dump());
  }
  CHECK(bad == 0);
  // load_tokenizer picks the right loader by content.
  CHECK(text::load_tokenizer(model)->encode("Hello world") == hf.encode("Hello world"));
  CHECK(text::load_tokenizer(model)->vocab_size() == 128257);
  CHECK(text::load_tokenizer(json)->encode("Hello world") == hf.encode("Hello world"));
}

TEST_CASE("chat format ids equal the reference tokenizer's ids for the rendered text", "[oracle][text]") {
  std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  const auto& tok = ours(json);
  text::ChatFormat chat(tok);
  using text::ContentPart;
  using text::Message;
  std::vector<std::pair<std::vector<Message>, bool>> convs = {
      {{{"user", {ContentPart::image(), ContentPart::from_text("What does the image show?")}}}, true},
      {{{"user", {ContentPart::from_text("Describe this image in two sentences"), ContentPart::image()}}}, true},
      {{{"system", {ContentPart::from_text("You are a careful assistant.")}},
        {"user", {ContentPart::from_text("How many circles?")}},
        {"assistant", {ContentPart::from_text("<SUMMARY>Count.</SUMMARY>\n\n<CONCLUSION>3</CONCLUSION>")}}},
       false},
      {{{"user", {ContentPart::image(), ContentPart::from_text("\n\n\nQ1")}},
        {"assistant", {ContentPart::from_text("\n first answer  ")}},
        {"user", {ContentPart::from_text(" Q2 ")}},
        {"assistant", {ContentPart::from_text("second")}}},
       false},
  };
  std::string in_path = test::fresh_dir("chat_oracle") + "/in.jsonl";
  {
    std::ofstream in(in_path);
    for (const auto& [msgs, gen] : convs) in << nlohmann::json(text::ChatFormat::render_text(msgs, gen)).dump() << "\n";
  }
  auto r = test::run_command(oracle_cmd("encode " + test::shell_quote(json) + " < " + test::shell_quote(in_path)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.output);
  std::string line;
  for (const auto& [msgs, gen] : convs) {
    REQUIRE(std::getline(lines, line));
    auto ref = nlohmann::json::parse(line).get<std::vector<TokenId>>();
    auto rendered = chat.render(msgs, gen);
    INFO(text::ChatFormat::render_text(msgs, gen));
    CHECK(rendered.ids == ref);
  }
}
