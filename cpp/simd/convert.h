// Storage encodings for compressed vectors, in portable baseline code: IEEE binary16 (f16) and
// symmetric per-vector int8 (value = scale * code, scale = max|x| / 127).
#pragma once

#include <cstddef>
#include <cstdint>

namespace recallcore::simd {

std::uint16_t f32_to_f16(float x);  // round to nearest even; overflow -> inf; NaN stays NaN
float f16_to_f32(std::uint16_t h);

void encode_f16(const float* x, std::size_t dim, std::uint16_t* out);
void decode_f16(const std::uint16_t* h, std::size_t dim, float* out);

// Returns the scale; an all-zero vector gets scale 0 and zero codes.
float encode_i8(const float* x, std::size_t dim, std::int8_t* out);
void decode_i8(const std::int8_t* c, float scale, std::size_t dim, float* out);

}  // namespace recallcore::simd
