#include "llavacot/decode/policy.h"

#include <algorithm>
#include <set>

#include "llavacot/text/chat_format.h"
#include "llavacot/util/error.h"
#include "llavacot/util/hash.h"
#include "llavacot/vision/image.h"
#include "llavacot/vision/image_processor.h"

namespace llavacot::decode {

using util::splitmix64;

struct EnginePolicy::Impl {
  struct NodeInfo {
    size_t set = 0;
    int64_t row = 0;
    Piece piece;
    std::string text;
    bool released = false;
  };
  std::unique_ptr<text::ChatFormat> chat;
  bool have_image = false;
  torch::Tensor pixel_values, aspect_ratio_ids, aspect_ratio_mask;
  int64_t num_tiles = 0, max_tiles = 0;
  std::vector<std::unique_ptr<RowSet>> sets;
  std::vector<NodeInfo> nodes;
  uint64_t requests = 0;

  const NodeInfo& node(Node n) const {
    LLAVACOT_CHECK(n >= 0 && n < static_cast<Node>(nodes.size()), UsageError, "no search node ", n);
    return nodes[static_cast<size_t>(n)];
  }
};

GenerateRequest expansion_request(const PolicySettings& settings, const std::string& stop, bool sample,
                                  uint64_t request_number) {
  GenerateRequest q;
  if (sample) {
    q.sampling = settings.sampling;
    q.sampling.seed = splitmix64(settings.sampling.seed ^ splitmix64(request_number));
  } else {
    q.sampling = SamplingParams{};
    q.sampling.repetition_penalty = settings.sampling.repetition_penalty;
  }
  q.max_new_tokens = settings.max_new_tokens;
  if (!stop.empty()) q.stop_strings.push_back(stop);
  for (const auto& s : settings.stop) q.stop_strings.push_back(s);
  return q;
}

std::string generated_text(const Engine& engine, const RowSet& rows, int64_t row) {
  const auto& ids = rows.ids(row);
  const auto start = static_cast<size_t>(rows.prompt_length(row));
  std::vector<text::TokenId> generated;
  for (size_t k = start; k < ids.size(); ++k)  // ids past the tokenizer's (a padded lm_head) have no text
    if (ids[k] < engine.tokenizer().vocab_size()) generated.push_back(static_cast<text::TokenId>(ids[k]));
  return engine.tokenizer().decode(generated, /*skip_special=*/true);
}

EnginePolicy::EnginePolicy(Engine& engine, Question question, PolicySettings settings, const StreamFn& stream,
                           EngineGate* gate, int64_t gate_key)
    : impl_(std::make_unique<Impl>()), engine_(engine), gate_(gate), gate_key_(gate_key), question_(std::move(question)),
      settings_(std::move(settings)), stream_(stream) {
  impl_->chat = std::make_unique<text::ChatFormat>(engine_.tokenizer());
  if (question_.has_image()) {
    const auto& v = engine_.model()->config.vision;
    vision::ImageProcessorConfig pc;
    pc.tile_size = v.image_size;
    pc.max_tiles = v.max_num_tiles;
    pc.aspect_ratios = v.supported_aspect_ratios;
    vision::ImageProcessor processor(pc);
    std::vector<std::vector<int64_t>> tiles;
    auto image = question_.image_path.empty() ? vision::decode_image_base64(question_.image_b64, "the question's image")
                                              : vision::decode_image_file(question_.image_path);
    if (question_.blank_image) std::fill(image.data.begin(), image.data.end(), uint8_t{255});
    processor.process_batch({{image}}, impl_->pixel_values,
                            impl_->aspect_ratio_ids, impl_->aspect_ratio_mask, &tiles);
    impl_->num_tiles = tiles.at(0).at(0);
    impl_->max_tiles = v.max_num_tiles;
    impl_->have_image = true;
  }
}

EnginePolicy::~EnginePolicy() = default;

void EnginePolicy::on_engine(const std::function<void()>& work) {
  auto counted = [&] {
    const Counters before = engine_.counters();
    work();
    Counters delta = engine_.counters();
    delta -= before;
    counters_ += delta;
  };
  if (gate_) gate_->exclusive(gate_key_, counted);
  else counted();
}

Prompt EnginePolicy::make_prompt(const std::string& user_text, bool with_image, const std::string& assistant_prefix) const {
  LLAVACOT_CHECK(!with_image || impl_->have_image, UsageError, "the question has no image");
  text::Message user{"user", {}};
  if (with_image) user.content.push_back(text::ContentPart::image());
  user.content.push_back(text::ContentPart::from_text(user_text));
  auto rendered = impl_->chat->render({user}, /*add_generation_prompt=*/true);
  Prompt p;
  p.ids.assign(rendered.ids.begin(), rendered.ids.end());
  if (!assistant_prefix.empty())
    for (auto id : engine_.tokenizer().encode(assistant_prefix)) p.ids.push_back(id);
  if (with_image) {
    std::vector<int32_t> ids32(p.ids.begin(), p.ids.end());
    p.cross_attention_mask = vision::cross_attention_mask({ids32}, {{impl_->num_tiles}},
                                                          engine_.model()->config.image_token_index, impl_->max_tiles, 1);
  }
  return p;
}

Prompt EnginePolicy::root_prompt() const {
  Prompt p = make_prompt(question_.text, impl_->have_image);
  if (impl_->have_image) {
    p.pixel_values = impl_->pixel_values;
    p.aspect_ratio_ids = impl_->aspect_ratio_ids;
    p.aspect_ratio_mask = impl_->aspect_ratio_mask;
  }
  return p;
}

Node EnginePolicy::root() {
  if (!impl_->nodes.empty()) return 0;
  const Prompt prompt = root_prompt();
  on_engine([&] { impl_->sets.push_back(std::make_unique<RowSet>(engine_.prefill({prompt}))); });
  Impl::NodeInfo n;
  n.piece.finish = Finish::kStopString;  // the prompt can be continued
  impl_->nodes.push_back(n);
  return 0;
}

std::vector<Node> EnginePolicy::expand(const std::vector<Node>& parents, const std::string& stop, bool sample) {
  root();
  std::vector<Node> out(parents.size());
  std::vector<std::pair<const RowSet*, int64_t>> picks;
  std::vector<size_t> live;
  for (size_t i = 0; i < parents.size(); ++i) {
    const auto& p = impl_->node(parents[i]);
    if (p.piece.ended()) {
      out[i] = parents[i];
      continue;
    }
    LLAVACOT_CHECK(!p.released && impl_->sets[p.set], UsageError, "search node ", parents[i],
                   " was released and cannot be expanded");
    picks.emplace_back(impl_->sets[p.set].get(), p.row);
    live.push_back(i);
  }
  if (live.empty()) return out;
  auto rows = std::make_unique<RowSet>(Engine::select(picks));
  std::vector<GenerateRequest> requests;
  for (size_t i = 0; i < live.size(); ++i)
    requests.push_back(expansion_request(settings_, stop, sample, sample ? ++impl_->requests : 0));
  StreamFn stream;
  if (stream_ && live.size() == 1) stream = stream_;
  std::vector<Generation> gens;
  if (gate_) {
    Counters counted;
    gens = gate_->generate(gate_key_, *rows, requests, counted);
    counters_ += counted;
  } else {
    on_engine([&] { gens = engine_.generate(*rows, requests, stream); });
  }
  const size_t set = impl_->sets.size();
  for (size_t i = 0; i < live.size(); ++i) {
    const auto& parent = impl_->node(parents[live[i]]);
    Impl::NodeInfo n;
    n.set = set;
    n.row = static_cast<int64_t>(i);
    const auto& g = gens[i];
    n.piece.text = g.text;
    n.piece.tokens = static_cast<int64_t>(g.tokens.size());
    n.piece.mean_logprob = g.mean_logprob();
    n.piece.path_logprob = parent.piece.path_logprob + g.logprob_sum;
    n.piece.path_tokens = parent.piece.path_tokens + n.piece.tokens;
    n.piece.finish = g.finish;
    n.text = generated_text(engine_, *rows, n.row);
    out[live[i]] = static_cast<Node>(impl_->nodes.size());
    impl_->nodes.push_back(std::move(n));
  }
  impl_->sets.push_back(std::move(rows));
  return out;
}

std::string EnginePolicy::text(Node node) const { return impl_->node(node).text; }

void EnginePolicy::release(const std::vector<Node>& nodes) {
  std::set<size_t> touched;
  for (Node n : nodes) {
    impl_->node(n);  // range check
    if (n == 0) continue;  // the prompt stays
    auto& info = impl_->nodes[static_cast<size_t>(n)];
    info.released = true;
    touched.insert(info.set);
  }
  for (size_t set : touched) {
    if (set == 0 || !impl_->sets[set]) continue;
    bool all = true;
    for (const auto& info : impl_->nodes)
      if (info.set == set && !info.released) all = false;
    if (all) impl_->sets[set].reset();
  }
}

int64_t EnginePolicy::cache_bytes() const {
  int64_t total = 0;
  for (const auto& set : impl_->sets)
    if (set) total += set->self_cache_bytes();
  return total;
}

const Piece& EnginePolicy::piece(Node node) const { return impl_->node(node).piece; }

std::vector<std::string> EnginePolicy::ask(const std::vector<std::string>& prompts, bool with_image) {
  LLAVACOT_CHECK(!prompts.empty(), UsageError, "ask: no prompts");
  root();
  with_image = with_image && impl_->have_image;
  std::vector<Prompt> ps;
  for (const auto& p : prompts) ps.push_back(make_prompt(p, with_image));
  std::vector<GenerateRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateRequest q;
    q.sampling = settings_.sampling;
    q.sampling.seed = splitmix64(settings_.sampling.seed ^ splitmix64(++impl_->requests));
    q.max_new_tokens = settings_.judge_max_new_tokens;
    requests.push_back(q);
  }
  std::vector<Generation> gens;
  on_engine([&] {
    RowSet rows = engine_.prefill(ps, with_image ? impl_->sets.front().get() : nullptr, 0);
    gens = engine_.generate(rows, requests);
  });
  counters_.judge_calls += static_cast<int64_t>(prompts.size());
  std::vector<std::string> out;
  for (auto& g : gens) out.push_back(std::move(g.text));
  return out;
}

std::vector<double> EnginePolicy::log_odds(const std::vector<std::string>& prompts, const std::string& assistant_prefix,
                                           const std::string& yes, const std::string& no) {
  LLAVACOT_CHECK(!prompts.empty(), UsageError, "log_odds: no prompts");
  root();
  const auto yes_ids = engine_.tokenizer().encode(yes), no_ids = engine_.tokenizer().encode(no);
  LLAVACOT_CHECK(!yes_ids.empty() && !no_ids.empty() && yes_ids.front() != no_ids.front(), UsageError,
                 "the verdict words '", yes, "' and '", no, "' must start with different tokens");
  std::vector<Prompt> ps;
  for (const auto& p : prompts) ps.push_back(make_prompt(p, impl_->have_image, assistant_prefix));
  torch::Tensor lp;
  on_engine([&] {
    RowSet rows = engine_.prefill(ps, impl_->have_image ? impl_->sets.front().get() : nullptr, 0);
    lp = engine_.next_logprobs(rows);
  });
  std::vector<double> out;
  for (int64_t r = 0; r < lp.size(0); ++r)
    out.push_back(lp[r][yes_ids.front()].item<double>() - lp[r][no_ids.front()].item<double>());
  return out;
}

}  // namespace llavacot::decode
