#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "llavacot/decode/scorer.h"
#include "llavacot/util/base64.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/http.h"

namespace llavacot::decode {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string hint_line(const Question& q) { return q.hint.empty() ? "" : "Hint about the question: " + q.hint + "\n"; }

// The answer up to the end of the target stage (the candidate a verifier sees).
std::string through_stage(const std::string& answer, ScoreTarget target) {
  if (target.whole_answer) return answer;
  const auto close = close_tag(target.stage);
  const size_t at = answer.find(close);
  return at == std::string::npos ? answer : answer.substr(0, at + close.size());
}

}  // namespace

std::string target_text(const std::string& answer, ScoreTarget target) {
  if (!target.whole_answer) {
    const auto parsed = parse_stages(answer);
    if (parsed[target.stage].found) return parsed[target.stage].text;
  }
  const size_t a = answer.find_first_not_of(" \t\r\n");
  return a == std::string::npos ? "" : answer.substr(a, answer.find_last_not_of(" \t\r\n") - a + 1);
}

int Scorer::compare(Policy& policy, Node a, Node b, ScoreTarget target) {
  auto s = score(policy, {a, b}, target);
  return s[1] > s[0] ? 1 : 0;
}

std::vector<double> LogprobScorer::score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) {
  std::vector<double> out;
  for (Node n : nodes) {
    const auto& p = policy.piece(n);
    if (target.whole_answer)
      out.push_back(p.path_tokens > 0 ? p.path_logprob / static_cast<double>(p.path_tokens) : 0.0);
    else
      out.push_back(p.mean_logprob);
  }
  policy.counters().scorer_calls += static_cast<int64_t>(nodes.size());
  return out;
}

std::vector<double> SelfVerifyScorer::score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) {
  if (nodes.empty()) return {};
  std::vector<std::string> prompts;
  for (Node n : nodes)
    prompts.push_back(templates_.render("self_verify", {{"question", policy.question().text},
                                                        {"hint", hint_line(policy.question())},
                                                        {"candidate", target_text(through_stage(policy.text(n), target),
                                                                                  ScoreTarget{target.stage, true})}}));
  policy.counters().scorer_calls += static_cast<int64_t>(nodes.size());
  return policy.log_odds(prompts, templates_.get("self_verify_prefix"), " correct", " incorrect");
}

std::vector<double> PairwiseJudge::score(Policy&, const std::vector<Node>&, ScoreTarget) {
  throw UsageError("the pairwise judge compares two candidates and gives no scores; use a tournament");
}

int PairwiseJudge::compare(Policy& policy, Node a, Node b, ScoreTarget target) {
  const Question& q = policy.question();
  const std::string ta = policy.text(a), tb = policy.text(b);
  const auto pa = parse_stages(ta);
  const std::string caption = pa[Stage::kCaption].text, reasoning = pa[Stage::kReasoning].text;
  const std::string ra = target_text(ta, target), rb = target_text(tb, target);
  if (!target.whole_answer && target.stage == Stage::kReasoning && precheck_) {
    // Text-only correctness checks first: a candidate judged incorrect loses outright.
    std::vector<std::string> checks;
    for (const auto* r : {&ra, &rb})
      checks.push_back(templates_.render("check_reasoning", {{"question", q.text}, {"caption", caption}, {"candidate", *r}}));
    const auto verdicts = policy.ask(checks, /*with_image=*/false);
    if (lower(verdicts[0]).find("incorrect") != std::string::npos) return 1;
    if (lower(verdicts[1]).find("incorrect") != std::string::npos) return 0;
  }
  const std::string name = target.whole_answer ? "judge_answer" : std::string("judge_") + stage_name(target.stage);
  const auto prompt = templates_.render(name, {{"question", q.text},
                                               {"hint", hint_line(q)},
                                               {"response1", ra},
                                               {"response2", rb},
                                               {"caption", caption},
                                               {"reasoning", reasoning}});
  const auto reply = lower(policy.ask({prompt}, /*with_image=*/true).at(0));
  // As in the reference: response 1 wins only when the judge says so; anything else goes to response 2.
  return reply.find("i choose response 1") != std::string::npos ? 0 : 1;
}

std::string http_scorer_request(const Question& q, const std::string& image_b64, ScoreTarget target,
                                const std::vector<std::string>& candidates) {
  nlohmann::json j;
  j["protocol"] = "llavacot-reward/1";
  j["question"] = q.text;
  j["hint"] = q.hint;
  j["image"] = image_b64.empty() ? nlohmann::json(nullptr) : nlohmann::json(image_b64);
  j["image_path"] = q.image_path;
  j["stage"] = target.whole_answer ? "answer" : stage_name(target.stage);
  j["candidates"] = candidates;
  return j.dump();
}

std::vector<double> parse_http_scorer_reply(const std::string& body, size_t expected) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("scorer reply is not JSON (", e.what(), "): ", body.substr(0, 200)));
  }
  LLAVACOT_CHECK(j.is_object() && j.contains("scores"), FormatError, "scorer reply has no \"scores\" field: ",
                 body.substr(0, 200));
  const auto& s = j["scores"];
  LLAVACOT_CHECK(s.is_array(), FormatError, "scorer reply: \"scores\" must be an array");
  LLAVACOT_CHECK(s.size() == expected, FormatError, "scorer reply has ", s.size(), " scores for ", expected,
                 " candidates");
  std::vector<double> out;
  for (size_t i = 0; i < s.size(); ++i) {
    LLAVACOT_CHECK(s[i].is_number(), FormatError, "scorer reply: scores[", i, "] is not a number");
    const double v = s[i].get<double>();
    LLAVACOT_CHECK(std::isfinite(v), FormatError, "scorer reply: scores[", i, "] is not finite");
    out.push_back(v);
  }
  return out;
}

std::vector<double> HttpScorer::score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) {
  if (nodes.empty()) return {};
  const Question& q = policy.question();
  if (!q.image_b64.empty()) {
    image_b64_ = q.image_b64;
    image_for_.clear();
  } else if (!q.image_path.empty() && image_for_ != q.image_path) {
    image_b64_ = base64_encode(fs::read_file(q.image_path));
    image_for_ = q.image_path;
  }
  std::vector<std::string> candidates;
  for (Node n : nodes) candidates.push_back(target_text(policy.text(n), target));
  http::Options o;
  o.timeout_s = options_.timeout_s;
  o.retries = options_.retries;
  o.backoff_s = options_.backoff_s;
  const auto body = http_scorer_request(q, q.has_image() ? image_b64_ : "", target, candidates);
  const auto reply = http::post_json(options_.url, body, o);
  LLAVACOT_CHECK(reply.status >= 200 && reply.status < 300, IoError, "scorer at ", options_.url, " answered HTTP ",
                 reply.status, ": ", reply.body.substr(0, 200));
  policy.counters().scorer_calls += static_cast<int64_t>(nodes.size());
  try {
    return parse_http_scorer_reply(reply.body, nodes.size());
  } catch (const FormatError& e) {
    throw FormatError(str_cat("scorer at ", options_.url, ": ", e.what()));
  }
}

}  // namespace llavacot::decode
