// llavacot tokenize: encode lines from stdin to JSON id arrays, or decode id arrays back to text.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/error.h"

namespace llavacot::cli {

void register_tokenize(CLI::App& app) {
  struct Args {
    std::string tokenizer;
    bool allow_special = false, decode = false, json = false, skip_special = false, bos = false;
    int64_t image_token_index = 128256;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "encode lines from stdin as JSON id arrays (one per line), or decode id arrays with --decode");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json, tiktoken rank file or SentencePiece model")
      ->required()
      ->type_name("FILE");
  cmd->add_flag("--allow-special", a->allow_special, "turn special-token text such as <|eot_id|> into control tokens");
  cmd->add_flag("--bos", a->bos, "apply the tokenizer's post-processor (a leading <|begin_of_text|> if it adds one)");
  cmd->add_flag("--json", a->json, "input lines (or, with --decode, output lines) are JSON strings");
  cmd->add_flag("--decode", a->decode, "read JSON id arrays and print the text");
  cmd->add_flag("--skip-special", a->skip_special, "with --decode: drop special tokens");
  cmd->add_option("--image-token-index", a->image_token_index, "id given to <|image|> when the file lacks it");
  cmd->callback([a] {
    auto tok = text::load_tokenizer(a->tokenizer, static_cast<text::TokenId>(a->image_token_index));
    std::string line;
    int64_t line_no = 0;
    while (std::getline(std::cin, line)) {
      ++line_no;
      try {
        if (a->decode) {
          auto ids = nlohmann::json::parse(line).get<std::vector<text::TokenId>>();
          std::string s = tok->decode(ids, a->skip_special);
          std::cout << (a->json ? nlohmann::json(s).dump() : s) << "\n";
        } else {
          std::string s = a->json ? nlohmann::json::parse(line).get<std::string>() : line;
          auto ids = a->bos ? tok->encode_for_model(s, a->allow_special) : tok->encode(s, a->allow_special);
          std::cout << nlohmann::json(ids).dump() << "\n";
        }
      } catch (const nlohmann::json::exception& e) {
        throw FormatError(str_cat("stdin:", line_no, ": ", e.what()));
      } catch (const Error&) {
        rethrow_with_context(str_cat("stdin:", line_no));
      }
    }
  });
}

}  // namespace llavacot::cli
