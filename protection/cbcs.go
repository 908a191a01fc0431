package protection

import (
	"crypto/aes"
	"crypto/cipher"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Encryption patterns (ISO/IEC 23001-7 10.4.1): video encrypts one 16-byte
// block in ten (crypt_byte_block 1, skip_byte_block 9), as CMAF
// (ISO/IEC 23000-19 8.2.2.1) and Apple devices require; audio has no
// pattern (0, 0): every whole block of the sample is encrypted.
const (
	videoCryptBlocks = 1
	videoSkipBlocks  = 9
	blockSize        = 16
)

// cbcsCipher encrypts the protected ranges of samples with one key and
// constant IV. It is not safe for concurrent use: each Encrypt call has
// its own.
type cbcsCipher struct {
	block cipher.Block
	iv    [16]byte
	cbc   cipher.BlockMode
	// setIV restarts cbc's chain from an IV without a new BlockMode (the
	// CBC modes of crypto/cipher have the method); nil when cbc lacks it.
	setIV func([]byte)
}

// newCBCSCipher returns a cbcsCipher for key and iv.
func newCBCSCipher(key, iv [16]byte) (*cbcsCipher, error) {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	c := &cbcsCipher{block: b, iv: iv, cbc: cipher.NewCBCEncrypter(b, iv[:])}
	if s, ok := c.cbc.(interface{ SetIV([]byte) }); ok {
		c.setIV = s.SetIV
	}
	return c, nil
}

// restart returns a CBC mode whose chain starts from the constant IV.
func (c *cbcsCipher) restart() cipher.BlockMode {
	if c.setIV == nil {
		return cipher.NewCBCEncrypter(c.block, c.iv[:])
	}
	c.setIV(c.iv[:])
	return c.cbc
}

// encryptRange encrypts data in place with AES-CBC under the 'cbcs'
// pattern (ISO/IEC 23001-7 10.4.2): the chain starts from the constant IV
// at the first byte of the range, crypt blocks are encrypted, skip blocks
// are left clear and skipped by the chain, and the trailing partial block
// stays clear. With skip == 0 every whole block is encrypted.
func (c *cbcsCipher) encryptRange(data []byte, crypt, skip int) {
	whole := len(data) &^ (blockSize - 1)
	if whole == 0 {
		return
	}
	cbc := c.restart()
	if skip == 0 {
		cbc.CryptBlocks(data[:whole], data[:whole])
		return
	}
	step := crypt * blockSize
	for pos := 0; pos < whole; pos += step + skip*blockSize {
		n := min(step, whole-pos)
		cbc.CryptBlocks(data[pos:pos+n], data[pos:pos+n])
	}
}

// encryptSample encrypts one sample in place: the protected ranges of
// ssp, or the whole sample when ssp is empty (full-sample encryption).
// Each subsample's protected range starts the chain again from the IV
// (ISO/IEC 23001-7 10.4.2: constant IV, applied to each subsample).
func (c *cbcsCipher) encryptSample(sample []byte, ssp []mp4.SubSamplePattern, crypt, skip int) {
	if len(ssp) == 0 {
		c.encryptRange(sample, crypt, skip)
		return
	}
	pos := 0
	for _, s := range ssp {
		pos += int(s.BytesOfClearData)
		n := int(s.BytesOfProtectedData)
		if n > 0 {
			c.encryptRange(sample[pos:pos+n], crypt, skip)
		}
		pos += n
	}
}
