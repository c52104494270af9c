package identity

// DecodeFast and DecodeJWT expose the two verification paths to the
// differential fuzz test.
func (v *Verifier) DecodeFast(token string) (*Claims, bool) { return v.decodeFast(token) }
func (v *Verifier) DecodeJWT(token string) (*Claims, error) { return v.decodeJWT(token) }

// CachedTokens is how many verified tokens the verifier remembers.
func (v *Verifier) CachedTokens() int { return v.cache.c.Len() }
