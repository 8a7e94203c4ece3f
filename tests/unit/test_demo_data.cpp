// The synthetic demo generator: deterministic output, records our reader accepts, answers balanced per question
// kind, and captions that say what the pixels show.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "llavacot/data/demo.h"
#include "llavacot/data/llava_cot.h"
#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/text/bpe_trainer.h"
#include "llavacot/text/chat_format.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;
namespace stdfs = std::filesystem;

namespace {

data::DemoOptions small(const std::string& out, uint64_t seed, int64_t train = 300, int64_t bench = 16) {
  data::DemoOptions o;
  o.out = out;
  o.seed = seed;
  o.train = train;
  o.bench = bench;
  return o;
}

/// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : stdfs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[stdfs::relative(e.path(), dir).string()] = fs::read_file(e.path().string());
  return out;
}

std::vector<nlohmann::json> read_records(const std::string& jsonl) {
  std::vector<nlohmann::json> out;
  std::ifstream f(jsonl);
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string stage(const std::string& answer, const std::string& tag) {
  const std::string open = "<" + tag + "> ", close = " </" + tag + ">";
  const size_t a = answer.find(open), b = answer.find(close);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  return answer.substr(a + open.size(), b - a - open.size());
}

// The palette the generator draws with (BGR), and the colour names its captions use.
const std::vector<std::pair<std::string, cv::Vec3b>> kPalette = {
    {"red", {40, 40, 220}}, {"blue", {210, 90, 30}}, {"green", {50, 160, 40}}, {"yellow", {20, 200, 235}}};

int nearest_colour(const cv::Vec3b& p) {
  int best = -1;
  double best_d = 1e9;
  for (size_t i = 0; i < kPalette.size(); ++i) {
    const auto& q = kPalette[i].second;
    const double d = std::pow(p[0] - q[0], 2) + std::pow(p[1] - q[1], 2) + std::pow(p[2] - q[2], 2);
    if (d < best_d) {
      best_d = d;
      best = static_cast<int>(i);
    }
  }
  return best_d < 30 * 30 ? best : -1;
}

/// Colour name -> number of solid blobs of that colour in the image (connected components of pixels that
/// match a palette colour closely, ignoring anti-aliased specks).
std::map<std::string, int> blobs_by_colour(const cv::Mat& img) {
  cv::Mat label(img.rows, img.cols, CV_32S, cv::Scalar(-1));
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) label.at<int>(y, x) = nearest_colour(img.at<cv::Vec3b>(y, x));
  std::map<std::string, int> out;
  cv::Mat seen(img.rows, img.cols, CV_8U, cv::Scalar(0));
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) {
      const int c = label.at<int>(y, x);
      if (c < 0 || seen.at<uchar>(y, x)) continue;
      int size = 0;
      std::vector<cv::Point> stack = {{x, y}};
      seen.at<uchar>(y, x) = 1;
      while (!stack.empty()) {
        const cv::Point p = stack.back();
        stack.pop_back();
        ++size;
        for (const cv::Point d : {cv::Point(1, 0), cv::Point(-1, 0), cv::Point(0, 1), cv::Point(0, -1)}) {
          const cv::Point n = p + d;
          if (n.x < 0 || n.y < 0 || n.x >= img.cols || n.y >= img.rows || seen.at<uchar>(n) || label.at<int>(n) != c) continue;
          seen.at<uchar>(n) = 1;
          stack.push_back(n);
        }
      }
      if (size >= 20) ++out[kPalette[static_cast<size_t>(c)].first];
    }
  return out;
}

}  // namespace

TEST_CASE("the demo generator is deterministic in its seed and independent of its thread count", "[data][demo]") {
  const std::string dir = test::fresh_dir("demo_determinism");
  auto a = small(dir + "/a", 7), b = small(dir + "/b", 7), c = small(dir + "/c", 8);
  b.threads = 1;
  a.threads = 2;
  data::make_demo_data(a);
  data::make_demo_data(b);
  data::make_demo_data(c);
  const auto sa = snapshot(a.out), sb = snapshot(b.out), sc = snapshot(c.out);
  REQUIRE(sa.size() == sb.size());
  // images and masks, train.jsonl, vision.jsonl, six TSVs, tokenizer.json, manifest.json
  CHECK(sa.size() == 300 + 300 + 1 + 1 + 6 + 1 + 1);
  for (const auto& [path, bytes] : sa) {
    INFO(path);
    REQUIRE(sb.count(path));
    CHECK(sb.at(path) == bytes);
  }
  CHECK(sc.at("train.jsonl") != sa.at("train.jsonl"));
  CHECK(sc.at("bench/MMStar.tsv") != sa.at("bench/MMStar.tsv"));

  // An existing folder is refused unless --overwrite, and nothing temporary is left behind.
  CHECK_THROWS_AS(data::make_demo_data(a), UsageError);
  a.overwrite = true;
  a.train = 20;
  data::make_demo_data(a);
  CHECK(read_records(a.out + "/train.jsonl").size() == 20);
  for (const auto& e : stdfs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".partial") == std::string::npos);
}

TEST_CASE("demo records pass our validator, and their images and captions agree", "[data][demo]") {
  const std::string dir = test::fresh_dir("demo_valid");
  const auto o = small(dir + "/demo", 3, 400);
  const auto summary = data::make_demo_data(o);
  CHECK(summary.train_records == 400);
  CHECK(summary.verification_records > 20);
  CHECK(summary.multi_turn_records > 5);

  data::ReaderOptions ro;
  ro.image_root = o.out + "/images";
  ro.allow_text_only = false;
  data::LlavaCotReader reader(o.out + "/train.jsonl", ro);
  REQUIRE(reader.size() == 400);
  const auto raw = read_records(o.out + "/train.jsonl");
  int shapes_checked = 0, charts_checked = 0;
  std::set<std::string> kinds;
  for (size_t i = 0; i < reader.size(); ++i) {
    const data::Record r = reader.get(i);  // throws BadRecord on anything our validator refuses
    INFO(r.id);
    CHECK(r.turns.size() % 2 == 0);
    kinds.insert(raw[i].at("kind").get<std::string>());
    const cv::Mat img = cv::imread(r.image_path, cv::IMREAD_COLOR);
    REQUIRE(!img.empty());
    CHECK(img.cols == 112);
    const std::string caption = stage(r.turns[1].value, "CAPTION");
    std::smatch m;
    if (std::regex_search(caption, m, std::regex("^The image shows (\\d+) shapes? on a white background"))) {
      // Every shape the caption lists is a blob of its colour in the picture, and nothing else is.
      std::map<std::string, int> said;
      const std::regex item("a (red|blue|green|yellow) (circle|square|triangle)");
      for (auto it = std::sregex_iterator(caption.begin(), caption.end(), item); it != std::sregex_iterator(); ++it)
        ++said[(*it)[1].str()];
      int total = 0;
      for (const auto& [c, n] : said) total += n;
      CHECK(total == std::stoi(m[1].str()));
      CHECK(blobs_by_colour(img) == said);
      ++shapes_checked;
    } else if (caption.rfind("The image is a bar chart", 0) == 0) {
      // Each bar's height read off the pixels (its top against the grid: value v at y = S(0.9 - 0.08 v)).
      const std::regex bar("a (red|blue|green|yellow) bar of height (\\d)");
      for (auto it = std::sregex_iterator(caption.begin(), caption.end(), bar); it != std::sregex_iterator(); ++it) {
        int colour = 0;
        while (kPalette[static_cast<size_t>(colour)].first != (*it)[1].str()) ++colour;
        int top = img.rows;
        for (int y = 0; y < img.rows && top == img.rows; ++y)
          for (int x = 0; x < img.cols; ++x)
            if (nearest_colour(img.at<cv::Vec3b>(y, x)) == colour) {
              top = y;
              break;
            }
        const double value = (0.9 * img.rows - top) / (0.08 * img.rows);
        CHECK(std::lround(value) == std::stoi((*it)[2].str()));
      }
      ++charts_checked;
    }
  }
  CHECK(shapes_checked > 100);
  CHECK(charts_checked > 40);
  CHECK(kinds.size() == data::demo_question_kinds().size() + 1);  // every kind, and "verify"
}

TEST_CASE("the exists REASONING lists the caption's shapes of the asked colour, then finds the asked shape", "[data][demo]") {
  const std::string dir = test::fresh_dir("demo_exists");
  const auto o = small(dir + "/demo", 5, 600);
  data::make_demo_data(o);
  data::ReaderOptions ro;
  ro.image_root = o.out + "/images";
  data::LlavaCotReader reader(o.out + "/train.jsonl", ro);
  const auto raw = read_records(o.out + "/train.jsonl");
  const std::regex asked("Is there a (red|blue|green|yellow) (circle|square|triangle) in the image\\?");
  const std::regex item("(red|blue|green|yellow) (circle|square|triangle)");
  int checked = 0, none_of_colour = 0;
  for (size_t i = 0; i < reader.size(); ++i) {
    if (raw[i].at("kind").get<std::string>() != "exists") continue;
    const data::Record r = reader.get(i);
    INFO(r.id);
    std::smatch q;
    REQUIRE(std::regex_search(r.turns[0].value, q, asked));
    const std::string colour = q[1].str(), shape = q[2].str();
    const std::string caption = stage(r.turns[1].value, "CAPTION"), reasoning = stage(r.turns[1].value, "REASONING");
    std::multiset<std::string> in_caption, in_reasoning;
    for (auto it = std::sregex_iterator(caption.begin(), caption.end(), item); it != std::sregex_iterator(); ++it)
      if ((*it)[1].str() == colour) in_caption.insert((*it)[2].str());
    const bool yes = in_caption.count(shape) > 0;
    std::string conclusion = stage(r.turns[1].value, "CONCLUSION");
    for (char& ch : conclusion) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    CHECK(conclusion == (yes ? "yes" : "no"));
    if (in_caption.empty()) {
      CHECK(reasoning == "None of the shapes is " + colour + ", so there is no " + colour + " " + shape +
                             " and the answer is no.");
      ++none_of_colour;
    } else {
      const std::string head = "The " + colour + " shapes are ";
      REQUIRE(reasoning.rfind(head, 0) == 0);
      const std::string list = reasoning.substr(head.size(), reasoning.find(". ") - head.size());
      for (auto it = std::sregex_iterator(list.begin(), list.end(), item); it != std::sregex_iterator(); ++it) {
        CHECK((*it)[1].str() == colour);
        in_reasoning.insert((*it)[2].str());
      }
      CHECK(in_reasoning == in_caption);
      CHECK_THAT(reasoning, Contains(yes ? "One of them is a " + shape + ", so the answer is yes."
                                         : "None of them is a " + shape + ", so the answer is no."));
    }
    ++checked;
  }
  CHECK(checked > 20);
  CHECK(none_of_colour > 0);
}

TEST_CASE("demo answers are balanced within every question kind", "[data][demo]") {
  const std::string dir = test::fresh_dir("demo_balance");
  auto o = small(dir + "/demo", 11, 5000, 4);
  o.multi_turn_fraction = 0;
  o.hint_fraction = 0.5;
  data::make_demo_data(o);
  // kind -> conclusion -> count, over first answers (what the question asked).
  std::map<std::string, std::map<std::string, int>> tally;
  // Multiple-choice answers conclude with the right option's text (VLMEvalKit matches it back to the letter):
  // the letter of that option, over the ImageMCQDataset prompts.
  std::map<char, int> letters;
  const std::regex option_line(R"(\n([A-D])\. ([^\n]*))");
  int64_t shapes_max = 0, mcq = 0, hinted = 0;
  const std::regex shapes_count(R"(The image shows (\d+) shape)");
  for (const auto& rec : read_records(o.out + "/train.jsonl")) {
    const std::string kind = rec.at("kind").get<std::string>();
    const std::string prompt = rec.at("conversations")[0].at("value").get<std::string>();
    const std::string answer = rec.at("conversations")[1].at("value").get<std::string>();
    const std::string conclusion = stage(answer, "CONCLUSION");
    std::smatch m;
    if (std::regex_search(answer, m, shapes_count)) shapes_max = std::max<int64_t>(shapes_max, std::stoll(m[1].str()));
    if (prompt.find("Options:") != std::string::npos) {
      std::vector<char> matching;
      int options = 0;
      for (auto it = std::sregex_iterator(prompt.begin(), prompt.end(), option_line); it != std::sregex_iterator(); ++it) {
        ++options;
        std::string text = (*it)[2].str();
        if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
        if (text == conclusion) matching.push_back((*it)[1].str()[0]);
      }
      INFO(prompt << "\n" << conclusion);
      REQUIRE(matching.size() == 1);  // exactly one option is the answer
      CHECK((options == 3 || options == 4));
      if (options == 4) ++letters[matching[0]];
      hinted += prompt.find("Hint: ") != std::string::npos;
      ++mcq;
    } else if (prompt.find("Choices:") == std::string::npos) {
      ++tally[kind][conclusion];
    }
  }
  // No shapes scene holds more than five shapes, and some hold five.
  CHECK(shapes_max == 5);
  // About half of the multiple-choice prompts have MMBench's hint line, as asked.
  REQUIRE(mcq > 200);
  CHECK(std::abs(static_cast<double>(hinted) / mcq - 0.5) < 0.1);
  // Yes/no kinds and the verification verdicts: each side between 40% and 60%.
  for (const std::string kind : {"exists", "compare", "position", "chart_compare"}) {
    INFO(kind);
    const double yes = tally[kind]["Yes"], no = tally[kind]["No"];
    REQUIRE(yes + no > 150);
    CHECK(tally[kind].size() == 2);
    CHECK(yes / (yes + no) > 0.4);
    CHECK(yes / (yes + no) < 0.6);
  }
  const double ok = tally["verify"]["correct"], bad = tally["verify"]["incorrect"];
  CHECK(ok / (ok + bad) > 0.4);
  CHECK(ok / (ok + bad) < 0.6);
  // The right option's letter: each 25% +- 5%.
  int all = 0;
  for (const auto& [l, n] : letters) all += n;
  REQUIRE(letters.size() == 4);
  for (const auto& [l, n] : letters) {
    INFO(l << " " << n << " of " << all);
    CHECK(std::abs(static_cast<double>(n) / all - 0.25) < 0.05);
  }
  // Counts drawn uniformly: for count_colour (0..4), count_total (1..5) and chart_value (1..9), every value appears
  // and the most frequent is at most three times the least frequent.
  for (const auto& [kind, values] : std::map<std::string, int>{{"count_colour", 5}, {"count_total", 5}, {"chart_value", 9}}) {
    INFO(kind);
    CHECK(static_cast<int>(tally[kind].size()) == values);
    int lo = 1 << 30, hi = 0;
    for (const auto& [v, n] : tally[kind]) {
      lo = std::min(lo, n);
      hi = std::max(hi, n);
    }
    CHECK(hi <= 3 * lo);
  }
}

TEST_CASE("the hint and three-option shares of the multiple-choice prompts follow their options", "[data][demo]") {
  const std::string dir = test::fresh_dir("demo_prompt_shares");
  const std::regex option_line(R"(\n[A-D]\. )");
  for (const auto& [hint, three] : std::vector<std::pair<double, double>>{{0.0, 1.0}, {1.0, 0.0}}) {
    INFO("hint_fraction " << hint << ", three_option_fraction " << three);
    auto o = small(dir + (hint > 0 ? "/hints" : "/three"), 5, 600, 4);
    o.hint_fraction = hint;
    o.three_option_fraction = three;
    data::make_demo_data(o);
    int64_t mcq = 0, hinted = 0, three_options = 0;
    for (const auto& rec : read_records(o.out + "/train.jsonl")) {
      const std::string prompt = rec.at("conversations")[0].at("value").get<std::string>();
      if (prompt.find("Options:") == std::string::npos) continue;
      ++mcq;
      hinted += prompt.find("Hint: ") != std::string::npos;
      three_options += std::distance(std::sregex_iterator(prompt.begin(), prompt.end(), option_line), std::sregex_iterator()) == 3;
    }
    REQUIRE(mcq > 30);
    CHECK(hinted == static_cast<int64_t>(hint) * mcq);
    CHECK(three_options == static_cast<int64_t>(three) * mcq);
    const auto manifest = nlohmann::json::parse(fs::read_file(o.out + "/manifest.json"));
    CHECK(manifest.at("train").at("hint_fraction").get<double>() == hint);
    CHECK(manifest.at("train").at("three_option_fraction").get<double>() == three);
  }
  auto o = small(dir + "/bad", 0);
  o.hint_fraction = 1.5;
  CHECK_THROWS_WITH(data::make_demo_data(o), Contains("--hint-fraction") && Contains("1.5"));
  o.hint_fraction = 0.5;
  o.three_option_fraction = -0.1;
  CHECK_THROWS_WITH(data::make_demo_data(o), Contains("--three-option-fraction"));
  CHECK(!stdfs::exists(dir + "/bad"));
}

TEST_CASE("demo options are checked", "[data][demo]") {
  const std::string dir = test::fresh_dir("demo_options");
  auto o = small(dir + "/x", 0);
  o.image_size = 20;
  CHECK_THROWS_AS(data::make_demo_data(o), UsageError);
  o = small(dir + "/x", 0);
  o.train = 0;
  CHECK_THROWS_AS(data::make_demo_data(o), UsageError);
  CHECK(!stdfs::exists(dir + "/x"));
}

TEST_CASE("the demo tokenizer fits the tiny preset's id layout and round-trips the demo text", "[data][demo][text]") {
  const std::string dir = test::fresh_dir("demo_tokenizer");
  const auto o = small(dir + "/demo", 2, 200);
  data::make_demo_data(o);
  auto tok = text::BpeTokenizer::from_tokenizer_json(o.out + "/tokenizer.json", -1);
  CHECK(tok.vocab_size() == 513);
  CHECK(tok.base_vocab_size() == 500);
  const auto& sp = tok.special_ids();
  CHECK(sp.bos == 500);  // the tiny preset: bos 500, eos {501, 508, 509}, pad 504, <|image|> 512
  CHECK(sp.pad == 504);
  CHECK(sp.eot == 509);
  CHECK(sp.image == 512);
  CHECK(sp.eos == std::vector<text::TokenId>{501, 508, 509});
  int64_t words = 0, tokens = 0;
  for (const auto& rec : read_records(o.out + "/train.jsonl"))
    for (const auto& turn : rec.at("conversations")) {
      const std::string t = turn.at("value").get<std::string>();
      const auto ids = tok.encode(t);
      CHECK(tok.decode(ids) == t);
      for (auto id : ids) CHECK(id < 500);
      tokens += static_cast<int64_t>(ids.size());
      words += std::count(t.begin(), t.end(), ' ') + 1;
    }
  INFO(tokens << " tokens for " << words << " words");
  CHECK(tokens < 2 * words);  // the merges learned the demo's words: well under two tokens a word
  // The chat format renders with it.
  text::ChatFormat chat(tok);
  const auto r = chat.render({{"user", {text::ContentPart::image(), text::ContentPart::from_text("How many shapes?")}},
                              {"assistant", {text::ContentPart::from_text("<SUMMARY> I will count. </SUMMARY>")}}});
  CHECK(r.ids.front() == 500);
  CHECK(std::count(r.ids.begin(), r.ids.end(), 512) == 1);
}

TEST_CASE("the BPE trainer refuses vocabularies it cannot fill", "[text]") {
  text::BpeTrainOptions o;
  o.vocab_size = 260;
  CHECK_THROWS_AS(text::train_bpe_tokenizer_json({"ab ab ab"}, o), UsageError);  // no room for control tokens
  o.vocab_size = 300;
  CHECK_THROWS_AS(text::train_bpe_tokenizer_json({"ab ab ab"}, o), UsageError);  // too few pairs for 32 merges
  o.vocab_size = 256 + 12 + 3;
  const auto json = text::train_bpe_tokenizer_json({"abc abc abc ab"}, o);
  const std::string path = test::fresh_dir("bpe_trainer") + "/tokenizer.json";
  fs::write_file_atomic(path, json);
  auto tok = text::BpeTokenizer::from_tokenizer_json(path, -1);
  // Merges, most frequent first, ties by bytes: "a"+"b" (4), " "+"ab" (3, ties "ab"+"c"), " ab"+"c" (2).
  CHECK(tok.encode(" abc").size() == 1);
  CHECK(tok.encode("abc").size() == 2);
  CHECK(tok.encode(" ab").size() == 1);
}
