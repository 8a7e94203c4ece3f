#include "llavacot/text/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>


#include "llavacot/util/error.h"

namespace llavacot::text {

namespace {
// libsentencepiece 0.1.x has no IsUserDefined(): user-defined symbols are recognised by their spelling,
// a bracketed name such as <|image|> or <eot>, which is how llavacot's demo models define their controls.
bool looks_user_defined(const std::string& piece) {
  return piece.size() > 2 && piece.front() == '<' && piece.back() == '>' && piece.find("\xE2\x96\x81") == std::string::npos;
}
}  // namespace

SentencePieceTokenizer SentencePieceTokenizer::load(const std::string& path) {
  SentencePieceTokenizer t;
  t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto status = t.sp_->Load(path);
  if (!status.ok()) throw FormatError(str_cat(path, ": not a SentencePiece model: ", status.ToString()));
  auto find = [&](const char* piece) {
    int id = t.sp_->PieceToId(piece);
    return id == t.sp_->unk_id() && std::string(piece) != t.sp_->IdToPiece(id) ? -1 : id;
  };
  t.specials_.bos = t.sp_->bos_id() >= 0 ? t.sp_->bos_id() : find("<|begin_of_text|>");
  if (t.sp_->eos_id() >= 0) t.specials_.eos.push_back(t.sp_->eos_id());
  for (const char* e : {"<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"})
    if (find(e) >= 0 && std::find(t.specials_.eos.begin(), t.specials_.eos.end(), find(e)) == t.specials_.eos.end())
      t.specials_.eos.push_back(find(e));
  t.specials_.pad = t.sp_->pad_id() >= 0 ? t.sp_->pad_id() : find("<|finetune_right_pad_id|>");
  t.specials_.image = find("<|image|>");
  t.specials_.start_header = find("<|start_header_id|>");
  t.specials_.end_header = find("<|end_header_id|>");
  t.specials_.eot = find("<|eot_id|>");
  return t;
}

std::vector<TokenId> SentencePieceTokenizer::encode(const std::string& text, bool /*allow_special*/) const {
  // SentencePiece matches user-defined symbols inside Encode itself and never turns text into control
  // symbols, so allow_special cannot change anything here (a documented limitation of this backend).
  std::vector<int> ids;
  sp_->Encode(text, &ids);
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::vector<int> kept;
  for (TokenId id : ids) {
    if (id < 0 || id >= vocab_size()) throw UsageError(str_cat("token id ", id, " is outside the vocabulary"));
    if (skip_special && is_special(id)) continue;
    kept.push_back(id);
  }
  std::string out;
  sp_->Decode(kept, &out);
  return utf8_lossy(out);
}

std::string SentencePieceTokenizer::token_bytes(TokenId id) const {
  if (id < 0 || id >= vocab_size()) throw UsageError(str_cat("token id ", id, " is outside the vocabulary"));
  if (is_special(id)) return sp_->IdToPiece(id);
  if (sp_->IsByte(id)) {
    // Byte pieces are written <0xAB>.
    std::string p = sp_->IdToPiece(id);
    return std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
  }
  std::string piece = sp_->IdToPiece(id);
  std::string out;
  // U+2581 (the SentencePiece space marker) stands for a space.
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += piece[i++];
    }
  }
  return out;
}

TokenId SentencePieceTokenizer::token_to_id(const std::string& token) const {
  int id = sp_->PieceToId(token);
  if (id == sp_->unk_id() && token != sp_->IdToPiece(id)) return -1;
  return id;
}

bool SentencePieceTokenizer::is_special(TokenId id) const {
  return id >= 0 && id < vocab_size() &&
         (sp_->IsControl(id) || (!sp_->IsUnknown(id) && looks_user_defined(sp_->IdToPiece(id))));
}

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

}  // namespace llavacot::text
