// Judge and verifier prompt templates: our own texts under configs/decode/prompts/, compiled in as defaults and
// replaceable per file from decode.prompts_dir. Placeholders: {question}, {hint}, {response1}, {response2},
// {candidate}, {caption}, {reasoning}.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace llavacot::decode {

/// `text` with each {key} of `values` replaced; other braces are left as they are.
std::string fill_placeholders(const std::string& text, const std::map<std::string, std::string>& values);

class PromptTemplates {
 public:
  /// The built-in templates, each replaced by `dir`/NAME.txt when that file exists (dir may be empty).
  static PromptTemplates load(const std::string& dir);
  /// The same for any set of templates: `names` from `built_in`, each replaced by `dir`/NAME.txt when that file
  /// exists; `key` names the setting in errors.
  static PromptTemplates load_set(const std::map<std::string, std::string>& built_in, const std::vector<std::string>& names,
                                  const std::string& dir, const std::string& key);
  /// Names of the templates the strategies use.
  static const std::vector<std::string>& names();
  const std::string& get(const std::string& name) const;
  /// The template with each {key} replaced; an unknown {key} in the template is left as it is.
  std::string render(const std::string& name, const std::map<std::string, std::string>& values) const;
  /// Where each template came from ("built-in" or a path).
  const std::map<std::string, std::string>& sources() const { return sources_; }

 private:
  std::map<std::string, std::string> text_, sources_;
};

}  // namespace llavacot::decode
