#include "llavacot/decode/prompts.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "llavacot/util/error.h"

namespace llavacot::decode {

namespace {

const std::map<std::string, std::string>& built_in() {
  static const std::map<std::string, std::string> texts{
#include "llavacot/default_prompts.inc"
  };
  return texts;
}

}  // namespace

const std::vector<std::string>& PromptTemplates::names() {
  static const std::vector<std::string> n{"judge_summary",   "judge_caption", "judge_reasoning",
                                          "judge_conclusion", "judge_answer",  "check_reasoning",
                                          "self_verify",      "self_verify_prefix"};
  return n;
}

PromptTemplates PromptTemplates::load(const std::string& dir) { return load_set(built_in(), names(), dir, "decode.prompts_dir"); }

PromptTemplates PromptTemplates::load_set(const std::map<std::string, std::string>& built_in,
                                          const std::vector<std::string>& names, const std::string& dir,
                                          const std::string& key) {
  PromptTemplates t;
  for (const auto& name : names) {
    auto it = built_in.find(name);
    LLAVACOT_CHECK(it != built_in.end(), RuntimeError, "the built-in prompt template '", name, "' is missing");
    t.text_[name] = it->second;
    t.sources_[name] = "built-in";
  }
  if (dir.empty()) return t;
  LLAVACOT_CHECK(std::filesystem::is_directory(dir), ConfigError, key, ": '", dir, "' is not a directory");
  for (const auto& name : names) {
    const auto path = (std::filesystem::path(dir) / (name + ".txt")).string();
    if (!std::filesystem::exists(path)) continue;
    std::ifstream in(path, std::ios::binary);
    LLAVACOT_CHECK(in, IoError, "cannot read prompt template ", path);
    std::ostringstream s;
    s << in.rdbuf();
    t.text_[name] = s.str();
    t.sources_[name] = path;
  }
  return t;
}

const std::string& PromptTemplates::get(const std::string& name) const {
  auto it = text_.find(name);
  LLAVACOT_CHECK(it != text_.end(), UsageError, "no prompt template named '", name, "'");
  return it->second;
}

std::string fill_placeholders(const std::string& t, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(t.size() + 256);
  size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '{') {
      const size_t close = t.find('}', i + 1);
      if (close != std::string::npos) {
        auto it = values.find(t.substr(i + 1, close - i - 1));
        if (it != values.end()) {
          out += it->second;
          i = close + 1;
          continue;
        }
      }
    }
    out += t[i++];
  }
  return out;
}

std::string PromptTemplates::render(const std::string& name, const std::map<std::string, std::string>& values) const {
  return fill_placeholders(get(name), values);
}

}  // namespace llavacot::decode
