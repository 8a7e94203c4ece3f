#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

#include "llavacot/decode/strategy.h"
#include "llavacot/util/error.h"

namespace llavacot::decode {

SearchSettings search_settings(const DecodeConfig& c) {
  SearchSettings s;
  s.strategy = c.strategy;
  s.candidates = c.candidates;
  s.keep = c.keep;
  s.max_retraces = c.max_retraces;
  s.conclusions = c.conclusions;
  s.threshold = c.score_mean + c.threshold_z * c.score_std;
  s.seed = static_cast<uint64_t>(c.seed);
  return s;
}

PolicySettings policy_settings(const DecodeConfig& c) {
  PolicySettings p;
  p.sampling.temperature = c.temperature;
  p.sampling.top_k = c.top_k;
  p.sampling.top_p = c.top_p;
  p.sampling.repetition_penalty = c.repetition_penalty;
  p.sampling.seed = static_cast<uint64_t>(c.seed);
  p.max_new_tokens = c.max_new_tokens;
  p.judge_max_new_tokens = c.judge_max_new_tokens;
  p.stop = c.stop;
  return p;
}

std::shared_ptr<Scorer> make_scorer(const DecodeConfig& c) {
  if (c.scorer == "logprob") return std::make_shared<LogprobScorer>();
  if (c.scorer == "self_verify") return std::make_shared<SelfVerifyScorer>(PromptTemplates::load(c.prompts_dir));
  if (c.scorer == "pairwise") return std::make_shared<PairwiseJudge>(PromptTemplates::load(c.prompts_dir), c.reasoning_precheck);
  if (c.scorer == "http") {
    HttpScorerOptions o;
    o.url = c.scorer_url;
    o.timeout_s = c.scorer_timeout_s;
    o.retries = static_cast<int>(c.scorer_retries);
    return std::make_shared<HttpScorer>(o);
  }
  throw ConfigError(str_cat("decode.scorer: unknown scorer '", c.scorer, "'"));
}

namespace {

// Indices of `scores` from best to worst (ties keep the earlier candidate first).
std::vector<size_t> ranking(const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

void emit(SearchResult& result, const EventFn& events, SearchEvent e) {
  if (events) events(e);
  result.trace.push_back(std::move(e));
}

// The paper v1 selection: draw two candidates at random, keep the one the judge prefers, until one is left.
Node tournament(Policy& policy, Scorer& scorer, std::vector<Node> cands, ScoreTarget target, std::mt19937_64& rng) {
  LLAVACOT_CHECK(!cands.empty(), UsageError, "a tournament needs candidates");
  while (cands.size() > 1) {
    auto draw = [&] {
      std::uniform_int_distribution<size_t> pick(0, cands.size() - 1);
      const size_t i = pick(rng);
      const Node n = cands[i];
      cands.erase(cands.begin() + static_cast<std::ptrdiff_t>(i));
      return n;
    };
    const Node a = draw(), b = draw();
    cands.push_back(a == b ? a : (scorer.compare(policy, a, b, target) == 0 ? a : b));
  }
  return cands.front();
}

// The best of `cands` for `target`: by score for scalar scorers, by tournament for the pairwise judge.
Node select_best(Policy& policy, Scorer& scorer, const std::vector<Node>& cands, ScoreTarget target,
                 std::mt19937_64& rng, std::vector<double>* scores) {
  if (cands.size() == 1) return cands.front();
  if (!scorer.scalar()) return tournament(policy, scorer, cands, target, rng);
  *scores = scorer.score(policy, cands, target);
  return cands[ranking(*scores).front()];
}

class SingleStrategy : public Strategy {
 public:
  explicit SingleStrategy(bool sample) : sample_(sample) {}
  std::string name() const override { return sample_ ? "sample" : "greedy"; }
  SearchResult run(Policy& policy, const EventFn& events) override {
    SearchResult r;
    r.node = policy.expand({policy.root()}, "", sample_).front();
    r.text = policy.text(r.node);
    emit(r, events, {"answer", "", r.text, {}});
    return r;
  }

 private:
  bool sample_;
};

class BestOfN : public Strategy {
 public:
  BestOfN(SearchSettings s, std::shared_ptr<Scorer> scorer) : s_(std::move(s)), scorer_(std::move(scorer)) {}
  std::string name() const override { return "best_of_n"; }
  SearchResult run(Policy& policy, const EventFn& events) override {
    std::mt19937_64 rng(s_.seed);
    SearchResult r;
    auto cands = policy.expand(std::vector<Node>(static_cast<size_t>(s_.candidates), policy.root()), "", true);
    std::vector<double> scores;
    r.node = select_best(policy, *scorer_, cands, ScoreTarget{Stage::kConclusion, true}, rng, &scores);
    if (!scores.empty()) emit(r, events, {"scores", "answer", "", scores});
    r.text = policy.text(r.node);
    emit(r, events, {"answer", "", r.text, {}});
    return r;
  }

 private:
  SearchSettings s_;
  std::shared_ptr<Scorer> scorer_;
};

class StageBeam : public Strategy {
 public:
  StageBeam(SearchSettings s, std::shared_ptr<Scorer> scorer) : s_(std::move(s)), scorer_(std::move(scorer)) {}
  std::string name() const override { return "stage_beam"; }
  SearchResult run(Policy& policy, const EventFn& events) override {
    std::mt19937_64 rng(s_.seed);
    SearchResult r;
    Node ctx = policy.root();
    for (Stage stage : kStages) {
      auto cands = policy.expand(std::vector<Node>(static_cast<size_t>(s_.candidates), ctx), close_tag(stage), true);
      std::vector<double> scores;
      ctx = select_best(policy, *scorer_, cands, ScoreTarget{stage, false}, rng, &scores);
      std::vector<Node> losers;
      for (Node c : cands)
        if (c != ctx) losers.push_back(c);
      policy.release(losers);
      if (!scores.empty()) emit(r, events, {"scores", stage_name(stage), "", scores});
      emit(r, events, {"stage", stage_name(stage), policy.piece(ctx).text, {}});
      if (policy.piece(ctx).ended()) break;  // the model ended its answer early
    }
    r.node = ctx;
    r.text = policy.text(ctx);
    emit(r, events, {"answer", "", r.text, {}});
    return r;
  }

 private:
  SearchSettings s_;
  std::shared_ptr<Scorer> scorer_;
};

class Swires : public Strategy {
 public:
  Swires(SearchSettings s, std::shared_ptr<Scorer> scorer) : s_(std::move(s)), scorer_(std::move(scorer)) {}
  std::string name() const override { return "swires"; }
  SearchResult run(Policy& policy, const EventFn& events) override {
    SearchResult r;
    const Node summary = policy.expand({policy.root()}, close_tag(Stage::kSummary), true).front();
    emit(r, events, {"stage", "summary", policy.piece(summary).text, {}});
    if (policy.piece(summary).ended()) return finish(policy, r, events, summary);
    std::vector<std::pair<Node, double>> pool;
    const auto m = static_cast<size_t>(s_.candidates);
    const auto keep = std::min(static_cast<size_t>(s_.keep), m);
    for (;;) {
      r.rounds += 1;
      auto caps = policy.expand(std::vector<Node>(m, summary), close_tag(Stage::kCaption), true);
      auto cap_scores = scorer_->score(policy, caps, ScoreTarget{Stage::kCaption, false});
      emit(r, events, {"scores", "caption", "", cap_scores});
      const auto order = ranking(cap_scores);
      // The M reasonings of the round are shared out over the kept captions (M/N each, the best first).
      std::vector<Node> parents;
      for (size_t i = 0; i < m; ++i) parents.push_back(caps[order[i * keep / m]]);
      auto reasonings = policy.expand(parents, close_tag(Stage::kReasoning), true);
      policy.release(caps);  // captions are never expanded again (a retrace samples new ones from the summary)
      auto scores = scorer_->score(policy, reasonings, ScoreTarget{Stage::kReasoning, false});
      emit(r, events, {"scores", "reasoning", "", scores});
      for (size_t i = 0; i < reasonings.size(); ++i) pool.emplace_back(reasonings[i], scores[i]);
      std::vector<double> pooled;
      for (const auto& p : pool) pooled.push_back(p.second);
      std::sort(pooled.begin(), pooled.end(), std::greater<>());
      const double second = pooled[std::min<size_t>(1, pooled.size() - 1)];
      if (second > s_.threshold) break;
      if (r.retraces >= s_.max_retraces) break;
      r.retraces += 1;
      emit(r, events, {"retrace", "caption", "", {second, s_.threshold}});
    }
    std::stable_sort(pool.begin(), pool.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::vector<Node> best, rest;
    for (size_t i = 0; i < pool.size(); ++i)
      (static_cast<int64_t>(best.size()) < s_.conclusions ? best : rest).push_back(pool[i].first);
    policy.release(rest);
    auto concl = policy.expand(best, close_tag(Stage::kConclusion), true);
    auto final_scores = scorer_->score(policy, concl, ScoreTarget{Stage::kConclusion, true});
    emit(r, events, {"scores", "answer", "", final_scores});
    return finish(policy, r, events, concl[ranking(final_scores).front()]);
  }

 private:
  SearchResult finish(Policy& policy, SearchResult& r, const EventFn& events, Node node) {
    r.node = node;
    r.text = policy.text(node);
    emit(r, events, {"answer", "", r.text, {}});
    return r;
  }
  SearchSettings s_;
  std::shared_ptr<Scorer> scorer_;
};

}  // namespace

std::unique_ptr<Strategy> make_strategy(const SearchSettings& s, std::shared_ptr<Scorer> scorer) {
  LLAVACOT_CHECK(s.candidates >= 1 && s.keep >= 1 && s.keep <= s.candidates && s.max_retraces >= 0 && s.conclusions >= 1,
                 ConfigError, "decode: candidates >= keep >= 1, max_retraces >= 0 and conclusions >= 1 are required");
  if (s.strategy == "greedy") return std::make_unique<SingleStrategy>(false);
  if (s.strategy == "sample") return std::make_unique<SingleStrategy>(true);
  LLAVACOT_CHECK(scorer != nullptr, UsageError, "strategy ", s.strategy, " needs a scorer");
  if (s.strategy == "best_of_n") return std::make_unique<BestOfN>(s, scorer);
  if (s.strategy == "stage_beam") return std::make_unique<StageBeam>(s, scorer);
  if (s.strategy == "swires") {
    LLAVACOT_CHECK(scorer->scalar(), ConfigError, "decode.scorer: swires ranks candidates by score; the ", scorer->name(),
                   " scorer only compares pairs (use logprob, self_verify or http)");
    return std::make_unique<Swires>(s, scorer);
  }
  throw ConfigError(str_cat("decode.strategy: unknown strategy '", s.strategy, "'"));
}

}  // namespace llavacot::decode
