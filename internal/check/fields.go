package check

// Field numbers of the protobuf messages that Check reads (wire.go) and
// writes (encode.go) by hand, a group a message. Protobuf never renumbers
// a field; the differential tests against proto.Unmarshal and proto.Marshal
// fail on a wrong number here.
const (
	// Read: envoy.service.auth.v3.CheckRequest, down to the HTTP request.
	fieldCheckRequestAttributes = 1  // CheckRequest.attributes
	fieldAttributesRequest      = 4  // AttributeContext.request
	fieldAttributesExtensions   = 10 // AttributeContext.context_extensions
	fieldRequestHTTP            = 2  // AttributeContext.Request.http

	// Read: AttributeContext.HttpRequest. Envoy sends the headers either as
	// a map (headers) or, with encode_raw_headers, as a HeaderMap.
	fieldHTTPID, fieldHTTPMethod, fieldHTTPHeaders = 1, 2, 3
	fieldHTTPPath, fieldHTTPHost, fieldHTTPScheme  = 4, 5, 6
	fieldHTTPHeaderMap                             = 13
	fieldHeaderMapHeaders                          = 1 // HeaderMap.headers

	// Read and written: envoy.config.core.v3.HeaderValue. raw_value is
	// bytes, never checked for UTF-8.
	fieldHeaderKey, fieldHeaderValue, fieldHeaderRawValue = 1, 2, 3

	// Read: a map entry (map<string, string>).
	fieldMapKey, fieldMapValue = 1, 2

	// Written: envoy.service.auth.v3.CheckResponse and what it holds.
	fieldResponseStatus, fieldResponseDenied, fieldResponseOK = 1, 2, 3
	fieldStatusCode, fieldStatusMessage                       = 1, 2 // google.rpc.Status
	fieldDeniedStatus, fieldDeniedBody                        = 1, 3 // DeniedHttpResponse
	fieldHTTPStatusCode                                       = 1    // envoy.type.v3.HttpStatus.code
	// OkHttpResponse.headers and DeniedHttpResponse.headers share a number.
	fieldHeaders, fieldOKHeadersToRemove       = 2, 5
	fieldOptionHeader, fieldOptionAppendAction = 1, 3 // HeaderValueOption
)
