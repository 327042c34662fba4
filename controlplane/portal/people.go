package portal

import "net/http"

// registerPeople registers the pages of members and clusters.
func (p *Portal) registerPeople(m *http.ServeMux) {}
