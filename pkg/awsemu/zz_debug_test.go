package awsemu

import (
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
)

type logRetryer struct{ aws.RetryerV2 }

func (l logRetryer) IsErrorRetryable(err error) bool {
	r := l.RetryerV2.IsErrorRetryable(err)
	fmt.Fprintf(os.Stderr, "DEBUG retryable=%v err=%#v %v\n", r, err, err)
	return r
}
