#include "llavacot/text/tokenizer.h"

#include <fstream>

#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/text/sentencepiece_tokenizer.h"
#include "llavacot/util/error.h"

namespace llavacot::text {

namespace {

// Length of the valid UTF-8 sequence starting at s[i]: n > 0 when complete and valid; -k when the first
// k bytes are a valid but unfinished prefix cut off by the end; 0 when s[i] starts nothing valid, with
// *bad_len set to how many bytes form the maximal invalid subpart.
int sequence_at(const std::string& s, size_t i, size_t* bad_len) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  *bad_len = 1;
  if (c < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // valid range of the second byte
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < need; ++k) {
    if (i + k >= s.size()) return -k;
    unsigned char x = b(i + k);
    bool ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) {
      *bad_len = static_cast<size_t>(k);
      return 0;
    }
  }
  return need;
}

}  // namespace

std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t bad = 1;
    int n = sequence_at(bytes, i, &bad);
    if (n > 0) {
      out.append(bytes, i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    } else {
      out += "\xEF\xBF\xBD";
      i += n < 0 ? static_cast<size_t>(-n) : bad;
    }
  }
  return out;
}

size_t utf8_complete_prefix(const std::string& bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t bad = 1;
    int n = sequence_at(bytes, i, &bad);
    if (n < 0) return i;  // an unfinished character at the end: hold it back
    i += n > 0 ? static_cast<size_t>(n) : bad;
  }
  return i;
}

std::vector<TokenId> Tokenizer::encode_for_model(const std::string& text, bool allow_special) const {
  std::vector<TokenId> ids = encode(text, allow_special);
  if (adds_bos() && special_ids().bos >= 0) ids.insert(ids.begin(), special_ids().bos);
  return ids;
}

std::string IncrementalDecoder::push(TokenId id) {
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  pending_ += tokenizer_.token_bytes(id);
  size_t n = utf8_complete_prefix(pending_);
  if (n == 0) return {};
  std::string piece = utf8_lossy(pending_.substr(0, n));
  pending_.erase(0, n);
  text_ += piece;
  return piece;
}

std::string IncrementalDecoder::flush() {
  std::string piece = utf8_lossy(pending_);
  pending_.clear();
  text_ += piece;
  return piece;
}

std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, TokenId image_token_index) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(str_cat("cannot open tokenizer '", path, "'"));
  char head[64] = {0};
  in.read(head, sizeof(head));
  std::string start(head, static_cast<size_t>(in.gcount()));
  size_t first = start.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && start[first] == '{')
    return std::make_shared<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(path, image_token_index));
  // A tiktoken rank file is printable base64, a space and a number on every line; a SentencePiece model is
  // a binary protobuf.
  bool printable = !start.empty();
  for (char c : start)
    if (!(c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f))) printable = false;
  if (printable)
    return std::make_shared<BpeTokenizer>(BpeTokenizer::from_tiktoken(path, llama3_special_tokens(image_token_index)));
  return std::make_shared<SentencePieceTokenizer>(SentencePieceTokenizer::load(path));
}

}  // namespace llavacot::text
