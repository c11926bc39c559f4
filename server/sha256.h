// Sha256: incremental SHA-256 (OpenSSL libcrypto's EVP), for clone file
// digests: the source hashes each checkpoint file once, the receiver hashes
// what it wrote. Not thread-safe; one object per stream of bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/evp.h>

namespace relaykv {

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(std::string_view data) { EVP_DigestUpdate(ctx_.get(), data.data(), data.size()); }
  // The 32-byte digest; the object is spent afterwards.
  std::string Final() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &len);
    return std::string(reinterpret_cast<const char*>(digest), len);
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

}  // namespace relaykv
