#include "llavacot/decode/decoder.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "llavacot/decode/batcher.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/lora.h"
#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

namespace llavacot::decode {

namespace stdfs = std::filesystem;

std::shared_ptr<Engine> load_engine(const Config& cfg_in) {
  Config cfg = cfg_in;
  model::resolve_adapter_model(cfg.model, cfg.lora.adapter);  // --model pointing at a LoRA checkpoint
  const auto shapes = model::load_preset(cfg.model.preset);
  const auto tokenizer_path = model::tokenizer_path_for(cfg.model);
  std::shared_ptr<const text::Tokenizer> tok = text::load_tokenizer(tokenizer_path, shapes.image_token_index);
  LLAVACOT_CHECK(tok->special_ids().image == shapes.image_token_index, ConfigError, "tokenizer ", tokenizer_path,
                 " has <|image|> at ", tok->special_ids().image, " but the model expects ", shapes.image_token_index);
  LLAVACOT_CHECK(tok->vocab_size() <= shapes.text.vocab_size + 8, ConfigError, "tokenizer ", tokenizer_path, " has ",
                 tok->vocab_size(), " ids but the model's embedding has ", shapes.text.vocab_size + 8, " rows");
  auto m = model::build_model(cfg.model, static_cast<uint64_t>(cfg.run.seed), model::device_for(cfg.run.device));
  if (!cfg.lora.adapter.empty()) {  // merged: decoding then costs what the base model costs
    model::load_adapter(m, cfg.lora.adapter);
    LOG_INFO("decode", "merged ", model::merge_lora(m), " LoRA adapters from ", cfg.lora.adapter);
  }
  m->eval();
  if (cfg.model.weights.empty())
    LOG_WARN("decode", "model.weights is empty: decoding with randomly initialised weights (seed ", cfg.run.seed, ")");
  return std::make_shared<Engine>(m, tok);
}

Decoder::Decoder(const Config& cfg) : engine_(load_engine(cfg)) { build(cfg.decode); }

Decoder::Decoder(std::shared_ptr<Engine> engine, const DecodeConfig& decode) : engine_(std::move(engine)) { build(decode); }

void Decoder::build(const DecodeConfig& decode) {
  decode_ = decode;
  const auto settings = search_settings(decode);
  if (settings.strategy != "greedy" && settings.strategy != "sample") scorer_ = make_scorer(decode);
  strategy_ = make_strategy(settings, scorer_);
}

Answer Decoder::solve(const Question& q, const EventFn& events, const StreamFn& stream, EngineGate* gate, int64_t key) {
  const auto start = std::chrono::steady_clock::now();
  EnginePolicy policy(*engine_, q, policy_settings(decode_), stream, gate, key);
  Answer a;
  a.search = strategy_->run(policy, events);
  a.text = a.search.text;
  a.conclusion = conclusion_or_tail(a.text);
  a.strategy = strategy_->name();
  a.counters = policy.counters();
  a.counters.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return a;
}

Answer Decoder::answer(const Question& q, const EventFn& events, const StreamFn& stream) {
  return solve(q, events, stream, nullptr, 0);
}

bool Decoder::batches() const { return !scorer_ || scorer_->concurrent(); }

namespace {

// Each answer's share of a batch's wall time, in proportion to the tokens it generated.
void share_seconds(std::vector<Answer>& answers, double seconds) {
  int64_t total = 0;
  for (const auto& a : answers) total += a.counters.generated_tokens;
  for (auto& a : answers)
    a.counters.seconds = total > 0 ? seconds * static_cast<double>(a.counters.generated_tokens) / static_cast<double>(total)
                                   : seconds / static_cast<double>(answers.size());
}

}  // namespace

std::vector<Answer> Decoder::answer_batch(const std::vector<Question>& questions) {
  std::vector<Answer> out;
  if (!batches() || questions.size() <= 1) {
    for (const auto& q : questions) out.push_back(answer(q));
    return out;
  }
  const auto start = std::chrono::steady_clock::now();
  if (strategy_->name() != "greedy" && strategy_->name() != "sample") {
    // Searches: each question's on a thread of its own, their expansions decoded together (decode/batcher.h).
    out.resize(questions.size());
    QuestionBatch batch(*engine_);
    batch.run(static_cast<int64_t>(questions.size()), [&](int64_t i) {
      const auto k = static_cast<size_t>(i);
      out[k] = solve(questions[k], {}, {}, &batch, i);
    });
    share_seconds(out, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return out;
  }
  const PolicySettings settings = policy_settings(decode_);
  const bool sample = strategy_->name() == "sample";
  // Rows with an image and rows without one cannot share a prefill: each kind is its own batch.
  std::vector<size_t> order;
  for (size_t i = 0; i < questions.size(); ++i)
    if (questions[i].has_image()) order.push_back(i);
  const size_t with_images = order.size();
  for (size_t i = 0; i < questions.size(); ++i)
    if (!questions[i].has_image()) order.push_back(i);
  out.resize(questions.size());
  for (const auto& [from, to] : {std::pair<size_t, size_t>{0, with_images}, {with_images, order.size()}}) {
    if (from == to) continue;
    std::vector<Prompt> prompts;
    std::vector<GenerateRequest> requests;
    for (size_t k = from; k < to; ++k) {
      prompts.push_back(EnginePolicy(*engine_, questions[order[k]], settings).root_prompt());
      // The first (and only) request of each question's policy: the seed answer() would give it.
      requests.push_back(expansion_request(settings, "", sample, sample ? 1 : 0));
    }
    RowSet rows = engine_->prefill(prompts);
    const auto gens = engine_->generate(rows, requests);
    for (size_t k = from; k < to; ++k) {
      const auto row = static_cast<int64_t>(k - from);
      Answer& a = out[order[k]];
      a.text = generated_text(*engine_, rows, row);
      a.conclusion = conclusion_or_tail(a.text);
      a.strategy = strategy_->name();
      a.search.text = a.text;
      a.counters.prefill_tokens = static_cast<int64_t>(prompts[static_cast<size_t>(row)].ids.size());
      a.counters.generated_tokens = static_cast<int64_t>(gens[static_cast<size_t>(row)].tokens.size());
      a.counters.forward_passes = a.counters.generated_tokens;
      a.counters.images_encoded = questions[order[k]].has_image() ? 1 : 0;
    }
  }
  share_seconds(out, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

std::vector<Question> read_questions(const std::string& path) {
  std::ifstream in(path);
  LLAVACOT_CHECK(in, IoError, "cannot open questions file ", path);
  const auto base = stdfs::path(path).parent_path();
  std::vector<Question> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str_cat(path, ":", lineno, ": not JSON (", e.what(), ")"));
    }
    LLAVACOT_CHECK(j.is_object(), FormatError, path, ":", lineno, ": expected a JSON object");
    Question q;
    const char* key = j.contains("question") ? "question" : "prompt";
    LLAVACOT_CHECK(j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty(), FormatError, path, ":",
                   lineno, ": field \"question\" must be a non-empty string");
    q.text = j[key].get<std::string>();
    if (j.contains("hint") && !j["hint"].is_null()) {
      LLAVACOT_CHECK(j["hint"].is_string(), FormatError, path, ":", lineno, ": field \"hint\" must be a string");
      q.hint = j["hint"].get<std::string>();
    }
    if (j.contains("image") && !j["image"].is_null()) {
      LLAVACOT_CHECK(j["image"].is_string(), FormatError, path, ":", lineno, ": field \"image\" must be a string");
      stdfs::path image = j["image"].get<std::string>();
      if (image.is_relative()) image = base / image;
      LLAVACOT_CHECK(stdfs::exists(image), IoError, path, ":", lineno, ": image ", image.string(), " does not exist");
      q.image_path = image.string();
    }
    out.push_back(std::move(q));
  }
  LLAVACOT_CHECK(!out.empty(), FormatError, path, ": no questions");
  return out;
}

Calibration calibrate(Decoder& decoder, const std::vector<Question>& questions,
                      const std::function<void(int64_t, int64_t)>& progress) {
  LLAVACOT_CHECK(decoder.scorer() != nullptr && decoder.scorer()->scalar(), ConfigError,
                 "calibration needs a scalar scorer (decode.scorer: logprob, self_verify or http) and a search strategy");
  Calibration c;
  const auto m = static_cast<size_t>(decoder.settings().candidates);
  for (const auto& q : questions) {
    EnginePolicy policy(decoder.engine(), q, policy_settings(decoder.settings()));
    const Node summary = policy.expand({policy.root()}, close_tag(Stage::kSummary), true).front();
    auto caps = policy.expand(std::vector<Node>(m, summary), close_tag(Stage::kCaption), true);
    auto reasonings = policy.expand(caps, close_tag(Stage::kReasoning), true);
    for (double s : decoder.scorer()->score(policy, reasonings, ScoreTarget{Stage::kReasoning, false})) c.scores.push_back(s);
    c.questions += 1;
    if (progress) progress(c.questions, static_cast<int64_t>(questions.size()));
  }
  double sum = 0, sq = 0;
  for (double s : c.scores) sum += s;
  c.mean = sum / static_cast<double>(c.scores.size());
  for (double s : c.scores) sq += (s - c.mean) * (s - c.mean);
  c.std = c.scores.size() > 1 ? std::sqrt(sq / static_cast<double>(c.scores.size() - 1)) : 0.0;
  return c;
}

}  // namespace llavacot::decode
